package graphsim

import (
	"github.com/guestflow/guestflow/internal/config"
)

// Config returns a guestflow configuration for the seeded tenant, pointed at
// this emulator. CAFile is left empty: only the caller knows where it wrote
// CAPEM. Call it after Start, since it embeds URL().
func (s *Sim) Config() config.Config {
	base := s.URL()
	c := config.Config{
		Tenant: config.Tenant{
			ID:            s.opts.TenantID,
			GraphURL:      base,
			AuthorityHost: base + "/",
			// The admin API is served here too; instances get no
			// environmentId, so the forced sync is off until a caller sets
			// one (EnvironmentID) and the normal path is the delayed sync.
			PowerPlatformURL: base,
		},
		Notify:    config.Notify{Sender: SenderAddress},
		Instances: map[string]config.Instance{},
	}
	for name, in := range s.instances {
		c.Instances[name] = config.Instance{
			URL:               base + "/instances/" + name,
			SecurityGroupID:   in.groupID,
			License:           in.license,
			Roles:             append([]string(nil), in.roles...),
			LegacyEmailUpdate: in.legacy,
			// Every role the environment has but System Administrator:
			// a dev event may ask for any of them, never for that one.
			AllowedRoles: in.grantableRoles(),
		}
	}
	return c
}
