// Package policy checks what an event asks for against what the
// configuration grants. An event is a request from whoever could publish
// it (an HR connector, a bulk file, a compromised integration): only the
// configuration decides which roles, licenses and redirects an onboarding
// may have, and every step checks again, because an event can be published
// on any subject.
package policy

import (
	"fmt"
	"strings"

	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/pkg/events"
)

// Instance returns the configured instance the event names, or the
// permanent failure unknown_instance.
func Instance(instances map[string]config.Instance, name string) (config.Instance, error) {
	inst, ok := instances[name]
	if !ok {
		return config.Instance{}, failure.Permanent(failure.UnknownInstance, fmt.Errorf(
			"instance %q is not configured (known: %s); fix the event or add the instance to the configuration, then replay",
			name, strings.Join(config.Config{Instances: instances}.InstanceNames(), ", ")))
	}
	return inst, nil
}

// Check returns a permanent failure naming the first value of j (with its
// defaults applied) that the instance's allow-lists do not grant, and the
// configuration key that would grant it. Values from the event are quoted
// shortened (%.Nq), since an event's strings can be long.
func Check(name string, inst config.Instance, j events.Joined) error {
	for _, r := range j.Roles {
		if !inst.RoleAllowed(r) {
			return failure.Permanent(failure.RoleNotAllowed, fmt.Errorf(
				"role %.100q may not be granted in instance %q (allowed: %s); ask for an allowed role, or add it to instances.%s.allowedRoles, then replay",
				r, name, strings.Join(inst.AllowedRoles, ", "), name))
		}
	}
	if !inst.LicenseAllowed(j.License) {
		return failure.Permanent(failure.LicenseNotAllowed, fmt.Errorf(
			"license %.100q may not be assigned for instance %q (allowed: %s); ask for an allowed license, or add it to instances.%s.allowedLicenses, then replay",
			j.License, name, strings.Join(inst.AllowedLicenses, ", "), name))
	}
	if j.RedirectURL != "" && !inst.RedirectAllowed(j.RedirectURL) {
		return failure.Permanent(failure.RedirectNotAllowed, fmt.Errorf(
			"redirectUrl %.200q is not on an allowed host of instance %q (allowed: %s); leave it out for the instance URL, or add its host to instances.%s.allowedRedirectHosts, then replay",
			j.RedirectURL, name, strings.Join(inst.AllowedRedirectHosts, ", "), name))
	}
	return nil
}

// Member returns member_not_allowed unless the instance allows onboarding
// members of the tenant.
func Member(name string, inst config.Instance, email string) error {
	if inst.AllowMembers {
		return nil
	}
	return failure.Permanent(failure.MemberNotAllowed, fmt.Errorf(
		"%s belongs to a member of the tenant, not a guest, and instance %q does not onboard members; give members access through your own process, or set instances.%s.allowMembers: true, then replay",
		email, name, name))
}
