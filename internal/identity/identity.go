// Package identity answers one question for the steps after invite: is the
// user this event names really the user this onboarding found? An event can
// be published on any subject by anyone with publish rights, so a licensed
// event with another person's userId must not give that person roles.
//
// The invite step records whom it found or invited for each onboarding
// (Record, kept in the memo). A later step accepts the event's userId only
// when it is that record's user for the event's address; when there is no
// record (an onboarding older than the memo, or a memo that was lost), only
// when Graph says the user is a guest whose mail or otherMails is the
// event's address.
package identity

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/directory"
	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/policy"
	"github.com/guestflow/guestflow/pkg/events"
)

// Step is the memo step name the invite step keeps its records under.
const Step = "invite"

// Record is the invite step's memo of one onboarding's user.
type Record struct {
	// Email is the address the onboarding is for, lower-cased. The
	// onboarding id belongs to it: the same id for another address is
	// another onboarding reusing the id, and changes nothing of this one.
	// Empty in records written before it was kept.
	Email             string `json:"email,omitempty"`
	UserID            string `json:"userId"`
	UserPrincipalName string `json:"userPrincipalName"`
	UserType          string `json:"userType"`
	RedeemURL         string `json:"inviteRedeemUrl,omitempty"`
	Existing          bool   `json:"existingUser"`
	// ExternalUserState is the guest's invitation state when it was
	// found: "PendingAcceptance" or "Accepted".
	ExternalUserState string `json:"externalUserState,omitempty"`
	// Inviting marks an invitation about to be sent, recorded before
	// POST /invitations; Existing then says whether the address already
	// had a user. A memo still inviting on a redelivery means the last
	// attempt may have invited and died before recording it.
	Inviting bool `json:"inviting,omitempty"`
	// InvitingAt is when Inviting was recorded.
	InvitingAt time.Time `json:"invitingAt,omitzero"`
}

// For reports whether the record belongs to address (or predates keeping
// addresses).
func (r Record) For(address string) bool {
	return r.Email == "" || strings.EqualFold(r.Email, address)
}

// Memo reads the invite step's records.
type Memo interface {
	Get(ctx context.Context, step, onboardingID string, v any) (bool, error)
}

// Users reads directory users.
type Users interface {
	GetUser(ctx context.Context, id string) (directory.User, error)
}

// Verifier checks the events of the steps after invite against the
// configuration and the invite step's records.
type Verifier struct {
	memo      Memo
	users     Users
	instances map[string]config.Instance
}

// New returns a Verifier; users is asked only when there is no record.
func New(memo Memo, users Users, instances map[string]config.Instance) *Verifier {
	return &Verifier{memo: memo, users: users, instances: instances}
}

// Admit is what every step after invite checks before it acts on d, since
// an event can be published on any subject: that its instance is
// configured, that it asks for nothing the instance's allow-lists do not
// grant, and that its user is the onboarding's (a member only where the
// instance takes members). It returns the instance and the verified user.
func (v *Verifier) Admit(ctx context.Context, onboardingID string, d events.Invited) (config.Instance, User, error) {
	inst, err := policy.Instance(v.instances, d.Instance)
	if err != nil {
		return config.Instance{}, User{}, err
	}
	if err := policy.Check(d.Instance, inst, d.Joined); err != nil {
		return config.Instance{}, User{}, err
	}
	u, err := v.Verify(ctx, onboardingID, d.Email, d.UserID)
	if err != nil {
		return config.Instance{}, User{}, err
	}
	if u.Type != "Guest" {
		if err := policy.Member(d.Instance, inst, d.Email); err != nil {
			return config.Instance{}, User{}, err
		}
	}
	return inst, u, nil
}

// User is a verified user.
type User struct {
	ID string
	// Type is "Guest" or "Member", as the directory says, never as the
	// event says.
	Type string
	// RedeemURL is the invitation link Graph returned to the invite step;
	// empty when there is no record or no invitation.
	RedeemURL string
	// PendingAcceptance is true for a guest who had not redeemed an
	// invitation when last seen.
	PendingAcceptance bool
}

// Verify returns the user of onboardingID when it is userID and belongs to
// address, and the permanent failure identity_mismatch otherwise.
func (v *Verifier) Verify(ctx context.Context, onboardingID, address, userID string) (User, error) {
	var rec Record
	ok, err := v.memo.Get(ctx, Step, onboardingID, &rec)
	if err != nil {
		return User{}, err
	}
	if ok && rec.UserID != "" && !rec.Inviting {
		if !rec.For(address) {
			return User{}, mismatch("onboarding %s is for another address than the event's %s", onboardingID, address)
		}
		if !strings.EqualFold(rec.UserID, userID) {
			return User{}, mismatch("the event names user %s, but onboarding %s found user %s for %s", userID, onboardingID, rec.UserID, address)
		}
		return User{ID: rec.UserID, Type: rec.UserType, RedeemURL: rec.RedeemURL, PendingAcceptance: rec.ExternalUserState == pending}, nil
	}
	u, err := v.users.GetUser(ctx, userID)
	if err != nil {
		return User{}, err
	}
	if !u.IsGuest() {
		return User{}, mismatch("the event names user %s, a member of the tenant, and onboarding %s has no record of finding that member for %s", userID, onboardingID, address)
	}
	if !strings.EqualFold(u.Mail, address) && !slices.ContainsFunc(u.OtherMails, func(m string) bool { return strings.EqualFold(m, address) }) {
		return User{}, mismatch("the event names user %s, a guest whose addresses are not %s", userID, address)
	}
	return User{ID: u.ID, Type: u.UserType, PendingAcceptance: u.ExternalUserState == pending}, nil
}

// pending is Graph's externalUserState of a guest who has not redeemed.
const pending = "PendingAcceptance"

func mismatch(format string, args ...any) error {
	return failure.Permanent(failure.IdentityMismatch, fmt.Errorf(format+
		"; nothing was changed. Publish a joined event for the person instead of a later step's event", args...))
}
