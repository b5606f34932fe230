// Package invite is the first step: it validates a joined event, invites
// the person as a B2B guest (or finds the user they already are) and adds
// them to the instance's security group.
package invite

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/directory"
	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/identity"
	"github.com/guestflow/guestflow/internal/policy"
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

// Memo is durable memory per onboarding: the step records whom it invited,
// so a redelivered input neither invites again nor loses the redemption
// link, which Graph cannot return later.
type Memo interface {
	Get(ctx context.Context, step, onboardingID string, v any) (bool, error)
	Put(ctx context.Context, step, onboardingID string, v any) error
}

// found is the memo of one onboarding's user, which the later steps check
// their events against.
type found = identity.Record

// Handler is the invite step.
type Handler struct {
	dir       Directory
	memo      Memo
	instances map[string]config.Instance
	now       func() time.Time
}

// New returns the step.
func New(dir Directory, memo Memo, instances map[string]config.Instance) *Handler {
	return &Handler{dir: dir, memo: memo, instances: instances, now: time.Now}
}

// Handle consumes io.guestflow.user.joined.v1 and emits
// io.guestflow.user.invited.v1.
func (h *Handler) Handle(ctx context.Context, in event.Event) (*event.Event, error) {
	j, err := Check(in)
	if err != nil {
		return nil, err
	}
	inst, err := policy.Instance(h.instances, j.Instance)
	if err != nil {
		return nil, err
	}
	j.ApplyDefaults(events.Defaults{Roles: inst.Roles, License: inst.License, URL: inst.URL})
	// Before any call to Microsoft: an event that asks for more than the
	// configuration grants must not even look anyone up.
	if err := policy.Check(j.Instance, inst, j); err != nil {
		return nil, err
	}

	onboarding := events.OnboardingID(in)
	var u found
	done, err := h.memo.Get(ctx, Name, onboarding, &u)
	if err != nil {
		return nil, err
	}
	if done && !u.For(j.Email) {
		return nil, failure.Permanent(failure.OnboardingIDReused, fmt.Errorf(
			"onboarding id %s already belongs to another address; publish this person's joined event with a new id (nothing of the other onboarding was changed)", onboarding))
	}
	// No user yet: never looked up, interrupted while inviting, or an
	// invitation Graph refused.
	if u.UserID == "" || u.Inviting {
		if u, err = h.ensureUser(ctx, onboarding, j, inst, u); err != nil {
			return nil, err
		}
	}
	member := u.UserType != "" && u.UserType != "Guest"
	if member {
		// Checked on every delivery, so an allowMembers taken back
		// stops onboardings already under way.
		if err := policy.Member(j.Instance, inst, j.Email); err != nil {
			return nil, err
		}
	}
	if u.UserPrincipalName == "" {
		// Invited, but the new user was not readable yet (replication
		// lag): read it now, without inviting again.
		created, err := h.dir.GetUser(ctx, u.UserID)
		if err != nil {
			return nil, err
		}
		u.UserPrincipalName = created.UserPrincipalName
		if err := h.memo.Put(ctx, Name, onboarding, u); err != nil {
			return nil, err
		}
	}
	// A member's group memberships are the organisation's to manage.
	if inst.SecurityGroupID != "" && !member {
		if err := h.addToGroup(ctx, j.Instance, inst.SecurityGroupID, u.UserID); err != nil {
			return nil, err
		}
	}
	out := events.Invited{
		Joined: j, UserID: u.UserID, UserPrincipalName: u.UserPrincipalName, UserType: u.UserType,
		InviteRedeemURL: u.RedeemURL, ExistingUser: u.Existing, GroupID: inst.SecurityGroupID,
	}
	next, err := events.Next(in, Name, events.TypeInvited, out, h.now())
	return &next, err
}

// ensureUser finds the user behind the address or invites one, and records
// the result in the memo. An address that already has a user is never
// invited again: a member needs no invitation, and a guest who never
// redeemed theirs does so just in time by signing in at the instance URL
// the mail gives. Inviting again would spend the tenant's invitation budget
// (shared by every app) and an identity write for nothing but a new link.
//
// The memo is written twice around the invitation so that a retry never
// invites twice: "inviting" just before it, the result as soon as it
// succeeded, before anything else can fail. A worker that dies in between
// leaves "inviting" behind (an invitation Graph answered with an error
// clears it); a guest found behind the address afterwards is
// that invitation's, and is used as it is (its redemption link is lost, as
// Graph returns it once, and the instance URL redeems instead). While no
// guest is found yet the invitation may still be replicating, so the step
// retries for readableWithin after the mark before it invites again.
func (h *Handler) ensureUser(ctx context.Context, onboarding string, j events.Joined, inst config.Instance, last found) (found, error) {
	users, err := h.dir.FindUserByMail(ctx, j.Email)
	if err != nil {
		return found{}, err
	}
	if len(users) > 0 {
		match := pick(users)
		u := found{Email: j.Email, UserID: match.ID, UserPrincipalName: match.UserPrincipalName, UserType: match.UserType,
			ExternalUserState: match.ExternalUserState, Existing: !last.Inviting}
		// A member is not recorded unless the instance takes members:
		// a refused member leaves nothing behind.
		if !match.IsGuest() {
			if err := policy.Member(j.Instance, inst, j.Email); err != nil {
				return found{}, err
			}
		}
		return u, h.memo.Put(ctx, Name, onboarding, u)
	}
	if last.Inviting {
		if since := h.now().Sub(last.InvitingAt); since < readableWithin {
			// A wait, not a failure: bounded by a deadline rather than
			// by attempts, and looked at again when the window ends.
			return found{}, &failure.Error{
				Reason: failure.ReplicationLag, Deadline: readableWithin + waitDeadline,
				After: min(readableWithin-since, 10*time.Second),
				Err: fmt.Errorf("an earlier attempt was inviting %s %s ago with no answer, and no user is readable yet; waiting for directory replication before inviting again",
					j.Email, since.Round(time.Second)),
			}
		}
	}
	if err := h.memo.Put(ctx, Name, onboarding, found{Email: j.Email, Inviting: true, InvitingAt: h.now().UTC()}); err != nil {
		return found{}, err
	}
	inv, err := h.dir.Invite(ctx, j.Email, j.DisplayName, j.RedirectURL)
	if err != nil {
		if v := failure.Classify(err); v.Status != 0 || v.Reason == failure.Throttled {
			// Graph answered with an error, or the shared budget kept
			// the call from being made: no invitation to wait for. (A
			// 5xx that created one anyway only makes the retry find
			// the guest and take them as existing.)
			if perr := h.memo.Put(ctx, Name, onboarding, found{Email: j.Email}); perr != nil {
				return found{}, perr
			}
		}
		return found{}, err
	}
	// The user principal name is read afterwards (the caller does), since
	// the new user may not be readable on every replica yet.
	u := found{Email: j.Email, UserID: inv.UserID, UserType: "Guest", RedeemURL: inv.RedeemURL, ExternalUserState: "PendingAcceptance"}
	return u, h.memo.Put(ctx, Name, onboarding, u)
}

// Check is the step's check of a joined event's data: events.ParseJoined,
// failing with the error its dead letter carries (reason invalid_event).
// The HTTP intake refuses an event with it too, so that an event refused
// at the door is refused in the words its dead letter would have had.
func Check(in event.Event) (events.Joined, error) {
	j, err := events.ParseJoined(in.Data())
	if err != nil {
		return events.Joined{}, failure.Permanent(failure.InvalidEvent, fmt.Errorf("fix the joined event's data and republish it: %w", err))
	}
	return j, nil
}

// readableWithin is how long after an interrupted invitation the step
// waits for the invited guest to become readable before it concludes the
// invitation was never sent. Directory replication takes seconds.
const readableWithin = time.Minute

// waitDeadline bounds how long after its publish an input may keep waiting
// for an interrupted invitation to become readable.
const waitDeadline = 15 * time.Minute

// addToGroup adds the user to the instance's security group, which Dynamics
// 365 uses to decide who may sync into the environment. The error names the
// configuration key, since a group that does not exist (unknown_group) is
// fixed there.
func (h *Handler) addToGroup(ctx context.Context, instance, groupID, userID string) error {
	if err := h.dir.AddGroupMember(ctx, groupID, userID); err != nil {
		return fmt.Errorf("adding user %s to security group %s (instances.%s.securityGroupId): %w", userID, groupID, instance, err)
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
