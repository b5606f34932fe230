package role

import (
	"context"
	"strings"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/guestflow/guestflow/internal/dataverse"
)

// LookupTTL is how long the step trusts a business unit or a role it found
// by name. Every onboarding of an instance asks for the same few, twice
// (the first delivery usually meets a user not synced yet), so without a
// cache they were three of an onboarding's seven Web API calls. A business
// unit or role is renamed or replaced rarely, and never silently to a
// worse effect: a role that is gone fails its association, which drops it
// from the cache. What is trusted is only what was found: a name that
// found nothing is asked again on every delivery, so that a role created
// after a failure is found by the replay.
const LookupTTL = 5 * time.Minute

// lookupSize bounds each cache: instances × business units, and instances
// × roles, of one configuration.
const lookupSize = 1024

// lookups caches the step's reads of Dataverse's names. A role's
// System Administrator test (its template, or its name) is as fixed as the
// role's id, so a cached role is checked the same as a fresh one.
type lookups struct {
	dv    Dataverse
	bus   *expirable.LRU[string, string]
	roles *expirable.LRU[string, dataverse.Role]
}

func newLookups(dv Dataverse, ttl time.Duration) *lookups {
	return &lookups{
		dv:    dv,
		bus:   expirable.NewLRU[string, string](lookupSize, nil, ttl),
		roles: expirable.NewLRU[string, dataverse.Role](lookupSize, nil, ttl),
	}
}

// key joins the parts of a lookup: Dataverse compares names without case,
// and an instance URL is one however it is spelt.
func key(parts ...string) string {
	return strings.ToLower(strings.Join(parts, "\x00"))
}

// businessUnit is Dataverse.BusinessUnit, cached when it found one.
func (l *lookups) businessUnit(ctx context.Context, instanceURL, name string) (string, error) {
	k := key(instanceURL, name)
	if id, ok := l.bus.Get(k); ok {
		return id, nil
	}
	id, err := l.dv.BusinessUnit(ctx, instanceURL, name)
	if err == nil && id != "" {
		l.bus.Add(k, id)
	}
	return id, err
}

// role is Dataverse.FindRole, cached when it found one.
func (l *lookups) role(ctx context.Context, instanceURL, name, bu string) (*dataverse.Role, error) {
	k := key(instanceURL, bu, name)
	if r, ok := l.roles.Get(k); ok {
		return &r, nil
	}
	r, err := l.dv.FindRole(ctx, instanceURL, name, bu)
	if err == nil && r != nil {
		l.roles.Add(k, *r)
	}
	return r, err
}

// forget drops a role whose association failed: it may be gone, or
// replaced under its name.
func (l *lookups) forget(instanceURL, name, bu string) {
	l.roles.Remove(key(instanceURL, bu, name))
}
