// Package invite is the first step: it validates a joined event, invites
// the person as a B2B guest (or finds the user they already are) and adds
// them to the instance's security group.
package invite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/directory"
	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/pkg/events"
)

// Name is the step's name: its consumer, dead-letter subject and source.
const Name = "invite"

// Directory is what the step needs from Entra ID.
type Directory interface {
	FindUserByMail(ctx context.Context, address string) ([]directory.User, error)
	GetUser(ctx context.Context, id string) (directory.User, error)
	Invite(ctx context.Context, email, displayName, redirectURL string) (directory.Invitation, error)
	AddGroupMember(ctx context.Context, groupID, userID string) error
}

// Handler is the invite step.
type Handler struct {
	dir       Directory
	instances map[string]config.Instance
	now       func() time.Time
}

// New returns the step.
func New(dir Directory, instances map[string]config.Instance) *Handler {
	return &Handler{dir: dir, instances: instances, now: time.Now}
}

// Handle consumes io.guestflow.user.joined.v1 and emits
// io.guestflow.user.invited.v1.
func (h *Handler) Handle(ctx context.Context, in event.Event) (*event.Event, error) {
	j, err := events.ParseJoined(in.Data())
	if err != nil {
		return nil, failure.Permanent(failure.InvalidEvent, fmt.Errorf("fix the joined event's data and republish it: %w", err))
	}
	inst, ok := h.instances[j.Instance]
	if !ok {
		return nil, failure.Permanent(failure.UnknownInstance, fmt.Errorf(
			"instance %q is not configured (known: %s); fix the event or add the instance to the configuration, then replay",
			j.Instance, strings.Join(names(h.instances), ", ")))
	}
	j.ApplyDefaults(events.Defaults{Roles: inst.Roles, License: inst.License, URL: inst.URL})

	out := events.Invited{Joined: j, GroupID: inst.SecurityGroupID}
	if err := h.ensureUser(ctx, &out); err != nil {
		return nil, err
	}
	if inst.SecurityGroupID != "" {
		if err := h.dir.AddGroupMember(ctx, inst.SecurityGroupID, out.UserID); err != nil {
			return nil, err
		}
	}
	next, err := events.Next(in, Name, events.TypeInvited, out, h.now())
	return &next, err
}

// ensureUser finds the user behind the address or invites one. A guest that
// exists is invited again, which Graph answers with the same user and a
// fresh redemption link; a member of the tenant needs no invitation at all.
func (h *Handler) ensureUser(ctx context.Context, out *events.Invited) error {
	found, err := h.dir.FindUserByMail(ctx, out.Email)
	if err != nil {
		return err
	}
	if len(found) > 0 {
		u := pick(found)
		out.UserID, out.UserPrincipalName, out.ExistingUser = u.ID, u.UserPrincipalName, true
		if !u.IsGuest() {
			return nil
		}
	}
	inv, err := h.dir.Invite(ctx, out.Email, out.DisplayName, out.RedirectURL)
	if err != nil {
		return err
	}
	out.InviteRedeemURL = inv.RedeemURL
	if out.UserID == "" {
		u, err := h.dir.GetUser(ctx, inv.UserID)
		if err != nil {
			return err
		}
		out.UserID, out.UserPrincipalName = u.ID, u.UserPrincipalName
	}
	return nil
}

// pick prefers a member over a guest when an address matches both, because
// the member account is the person's own and already has access.
func pick(users []directory.User) directory.User {
	for _, u := range users {
		if !u.IsGuest() {
			return u
		}
	}
	return users[0]
}

func names(m map[string]config.Instance) []string {
	return config.Config{Instances: m}.InstanceNames()
}
