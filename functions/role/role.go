// Package role is the third step: it waits until the guest has been synced
// into the Dynamics 365 environment, gives them the security roles they
// lack and, on versions before Dynamics 365, fixes their email address.
//
// It never creates a mailbox approval or a server-side sync profile: B2B
// guests cannot have either.
package role

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/dataverse"
	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/identity"
	"github.com/guestflow/guestflow/pkg/events"
)

// Name is the step's name.
const Name = "role"

// DefaultSyncDeadline is how long the step waits for the environment's user
// sync before giving up with user_not_synced.
const DefaultSyncDeadline = 15 * time.Minute

// Dataverse is what the step needs from the environment's Web API.
type Dataverse interface {
	FindSystemUser(ctx context.Context, instanceURL, objectID string) (*dataverse.SystemUser, error)
	BusinessUnit(ctx context.Context, instanceURL, name string) (string, error)
	FindRole(ctx context.Context, instanceURL, name, bu string) (*dataverse.Role, error)
	UserRoles(ctx context.Context, instanceURL, userID string) ([]dataverse.Role, error)
	AssociateRole(ctx context.Context, instanceURL, userID, roleID string) error
	SetInternalEmail(ctx context.Context, instanceURL, userID, email string) error
	ForceSync(ctx context.Context, powerPlatformURL, environmentID, objectID string) error
}

// Verifier admits an event: its instance, what it asks for and its user
// (identity.Verifier).
type Verifier interface {
	Admit(ctx context.Context, onboardingID string, d events.Invited) (config.Instance, identity.User, error)
}

// Handler is the role step.
type Handler struct {
	dv            Dataverse
	verify        Verifier
	powerPlatform string
	syncDeadline  time.Duration
	names         *lookups
	now           func() time.Time
}

// New returns the step. powerPlatformURL is the admin API used to force the
// sync into instances with an environmentId; syncDeadline 0 means
// DefaultSyncDeadline.
func New(dv Dataverse, verify Verifier, powerPlatformURL string, syncDeadline time.Duration) *Handler {
	if syncDeadline <= 0 {
		syncDeadline = DefaultSyncDeadline
	}
	return &Handler{dv: dv, verify: verify, powerPlatform: powerPlatformURL, syncDeadline: syncDeadline,
		names: newLookups(dv, LookupTTL), now: time.Now}
}

// Handle consumes io.guestflow.user.licensed.v1 and emits
// io.guestflow.user.role_assigned.v1.
func (h *Handler) Handle(ctx context.Context, in event.Event) (*event.Event, error) {
	var d events.Licensed
	if err := in.DataAs(&d); err != nil {
		return nil, failure.Permanent(failure.InvalidEvent, fmt.Errorf("licensed event data: %w", err))
	}
	inst, _, err := h.verify.Admit(ctx, events.OnboardingID(in), d.Invited)
	if err != nil {
		return nil, err
	}
	// The business unit first: a configuration that cannot work must not
	// wait out the sync before saying so.
	bu, err := h.names.businessUnit(ctx, inst.URL, inst.BusinessUnit)
	if err != nil {
		return nil, err
	}
	if bu == "" {
		return nil, failure.Permanent(failure.UnknownBusinessUnit, fmt.Errorf(
			"business unit %q of instance %q does not exist in %s; fix instances.%s.businessUnit (empty means the root business unit), then replay",
			inst.BusinessUnit, d.Instance, inst.URL, d.Instance))
	}
	su, err := h.systemUser(ctx, d.Instance, inst, d.UserID)
	if err != nil {
		return nil, err
	}
	assigned, err := h.assign(ctx, d.Instance, inst, su.ID, bu, d.Roles)
	if err != nil {
		return nil, err
	}
	out := events.RoleAssigned{Licensed: d, SystemUserID: su.ID, BusinessUnitID: bu, AssignedRoles: assigned}
	if inst.LegacyEmailUpdate && !strings.EqualFold(su.InternalEmail, d.Email) {
		if err := h.dv.SetInternalEmail(ctx, inst.URL, su.ID, d.Email); err != nil {
			return nil, err
		}
		out.EmailUpdated = true
	}
	next, err := events.Next(in, Name, events.TypeRoleAssigned, out, h.now())
	return &next, err
}

// systemUser finds the user's systemuser, forcing the sync first where the
// instance has an environmentId. Until the user appears the step fails as
// user_not_synced, which the runtime redelivers with a growing server-side
// delay until the sync deadline.
func (h *Handler) systemUser(ctx context.Context, name string, inst config.Instance, userID string) (*dataverse.SystemUser, error) {
	su, err := h.dv.FindSystemUser(ctx, inst.URL, userID)
	if err != nil || su != nil {
		return su, err
	}
	notSynced := fmt.Sprintf("user %s is not in %s's systemusers yet; check that they hold a license and, where the instance has one, are in its security group",
		userID, name)
	if inst.EnvironmentID == "" {
		return nil, failure.Retry(failure.UserNotSynced, errors.New(notSynced), h.syncDeadline)
	}
	if err := h.dv.ForceSync(ctx, h.powerPlatform, inst.EnvironmentID, userID); err != nil {
		// Power Platform refuses while the license or the group
		// membership has not reached it, or while it cannot see the
		// user yet: that is the same wait, bounded by the sync deadline.
		if k := failure.KindOf(err); k == failure.KindNotSynced || k == failure.KindReplicationLag {
			return nil, failure.Retry(failure.UserNotSynced, fmt.Errorf("%s; the forced sync said: %w", notSynced, err), h.syncDeadline)
		}
		return nil, fmt.Errorf("forcing the sync of user %s into environment %s (instances.%s.environmentId): %w", userID, inst.EnvironmentID, name, err)
	}
	if su, err = h.dv.FindSystemUser(ctx, inst.URL, userID); err != nil || su != nil {
		return su, err
	}
	return nil, failure.Retry(failure.UserNotSynced, fmt.Errorf("%s, even after a forced sync", notSynced), h.syncDeadline)
}

// assign gives the user every named role it lacks and returns all of them.
// Present roles are skipped because Dataverse answers a repeated
// association with a duplicate-key error.
//
// A role holding the System Administrator privilege (the built-in role or a
// copy of it, known by its role template) is granted only when
// allowedRoles names it: "*" never reaches it.
func (h *Handler) assign(ctx context.Context, instance string, inst config.Instance, userID, bu string, names []string) ([]events.Role, error) {
	url := inst.URL
	current, err := h.dv.UserRoles(ctx, url, userID)
	if err != nil {
		return nil, err
	}
	var out []events.Role
	for _, name := range names {
		if r, ok := find(current, name); ok {
			out = append(out, events.Role{ID: r.ID, Name: r.Name})
			continue
		}
		r, err := h.names.role(ctx, url, name, bu)
		if err != nil {
			return nil, err
		}
		if r == nil {
			return nil, failure.Permanent(failure.UnknownRole, fmt.Errorf(
				"security role %q does not exist in business unit %s of %s; fix the role name, then replay", name, bu, url))
		}
		if r.IsSystemAdministrator() && !inst.RoleAllowedByName(name) {
			return nil, failure.Permanent(failure.RoleNotAllowed, fmt.Errorf(
				"role %q of instance %q holds the System Administrator privilege, which is granted only to a role allowedRoles names; name it in instances.%s.allowedRoles to allow it, then replay",
				name, instance, instance))
		}
		if err := h.dv.AssociateRole(ctx, url, userID, r.ID); err != nil && !dataverse.IsDuplicate(err) {
			h.names.forget(url, name, bu)
			return nil, err
		}
		out = append(out, events.Role{ID: r.ID, Name: r.Name})
	}
	return out, nil
}

func find(roles []dataverse.Role, name string) (dataverse.Role, bool) {
	for _, r := range roles {
		if strings.EqualFold(r.Name, name) {
			return r, true
		}
	}
	return dataverse.Role{}, false
}
