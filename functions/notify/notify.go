// Package notify is the last step: it mails the guest where to sign in,
// their invitation link and what B2B guests cannot use in Dynamics 365, once
// per onboarding.
package notify

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/directory"
	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/identity"
	"github.com/guestflow/guestflow/pkg/events"
)

// Name is the step's name.
const Name = "notify"

// Mailer sends mail through Graph.
type Mailer interface {
	SendMail(ctx context.Context, m directory.Mail) error
}

// Memo is durable memory per onboarding. The step records each mail it
// sends, so a redelivered input does not mail twice; only a worker that
// dies between sending and recording can cause a second mail.
type Memo interface {
	Get(ctx context.Context, step, onboardingID string, v any) (bool, error)
	Put(ctx context.Context, step, onboardingID string, v any) error
}

// Verifier admits an event: its instance, what it asks for and its user
// (identity.Verifier).
type Verifier interface {
	Admit(ctx context.Context, onboardingID string, d events.Invited) (config.Instance, identity.User, error)
}

// sent is the memo of one mail. To is the address mailed: the same
// onboarding id for another address is refused, not taken as mailed.
type sent struct {
	At time.Time `json:"at"`
	To string    `json:"to,omitempty"`
}

// Handler is the notify step.
type Handler struct {
	mail      Mailer
	memo      Memo
	verify    Verifier
	sender    string
	authority string // the tenant's sign-in host; redeem links live there
	now       func() time.Time
}

// Options are the notify step's settings from the configuration.
type Options struct {
	// Sender is the mailbox the mail comes from.
	Sender string
	// AuthorityHost is the tenant's sign-in endpoint (tenant.authorityHost):
	// the only host an invitation redemption link may point at.
	AuthorityHost string
}

// New returns the step.
func New(mail Mailer, memo Memo, verify Verifier, o Options) *Handler {
	host := ""
	if u, err := url.Parse(o.AuthorityHost); err == nil {
		host = strings.ToLower(u.Host)
	}
	return &Handler{mail: mail, memo: memo, verify: verify, sender: o.Sender, authority: host, now: time.Now}
}

// Handle consumes io.guestflow.user.role_assigned.v1 and emits
// io.guestflow.user.onboarded.v1.
func (h *Handler) Handle(ctx context.Context, in event.Event) (*event.Event, error) {
	var d events.RoleAssigned
	if err := in.DataAs(&d); err != nil {
		return nil, failure.Permanent(failure.InvalidEvent, fmt.Errorf("role_assigned event data: %w", err))
	}
	onboarding := events.OnboardingID(in)
	inst, u, err := h.verify.Admit(ctx, onboarding, d.Invited)
	if err != nil {
		return nil, err
	}
	// The mail carries only links the configuration and Graph vouch
	// for: the instance's URL, and the redemption link the invite step
	// got from Graph, or one on the tenant's sign-in host.
	if u.RedeemURL != "" {
		d.InviteRedeemURL = u.RedeemURL
	} else if d.InviteRedeemURL != "" && !h.onAuthority(d.InviteRedeemURL) {
		return nil, failure.Permanent(failure.RedirectNotAllowed, fmt.Errorf(
			"inviteRedeemUrl %.200q is not on the tenant's sign-in host %s; an invitation link comes from Graph, never from an event: republish the joined event instead",
			d.InviteRedeemURL, h.authority))
	}
	out := events.Onboarded{RoleAssigned: d}
	if d.SendsEmail() {
		at, err := h.send(ctx, onboarding, Links{Instance: inst.URL, Pending: u.PendingAcceptance}, d)
		if err != nil {
			return nil, err
		}
		out.NotifiedAt = at.UTC().Format(time.RFC3339)
	}
	next, err := events.Next(in, Name, events.TypeOnboarded, out, h.now())
	return &next, err
}

// send mails the user unless the memo says it already happened.
func (h *Handler) send(ctx context.Context, onboardingID string, links Links, d events.RoleAssigned) (time.Time, error) {
	var done sent
	ok, err := h.memo.Get(ctx, Name, onboardingID, &done)
	if err != nil {
		return time.Time{}, err
	}
	if ok && done.To != "" && !strings.EqualFold(done.To, d.Email) {
		return time.Time{}, failure.Permanent(failure.OnboardingIDReused, fmt.Errorf(
			"onboarding id %s already mailed another address; publish this person's joined event with a new id", onboardingID))
	}
	if ok {
		return done.At, nil
	}
	subject, html, err := Render(d, links)
	if err != nil {
		return time.Time{}, failure.Permanent(failure.InvalidEvent, err)
	}
	if err := h.mail.SendMail(ctx, directory.Mail{From: h.sender, To: d.Email, Subject: subject, HTML: html}); err != nil {
		return time.Time{}, err
	}
	at := h.now().UTC()
	if err := h.memo.Put(ctx, Name, onboardingID, sent{At: at, To: d.Email}); err != nil {
		return time.Time{}, fmt.Errorf("mail sent but not recorded (a retry will send it again): %w", err)
	}
	return at, nil
}

// onAuthority reports whether raw is an https URL on the tenant's sign-in
// host.
func (h *Handler) onAuthority(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "https" && u.User == nil && h.authority != "" && strings.EqualFold(u.Host, h.authority)
}
