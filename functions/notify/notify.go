// Package notify is the last step: it mails the guest where to sign in,
// their invitation link and what B2B guests cannot use in Dynamics 365, once
// per onboarding.
package notify

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/directory"
	"github.com/guestflow/guestflow/internal/failure"
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

// sent is the memo of one mail.
type sent struct {
	At time.Time `json:"at"`
}

// Handler is the notify step.
type Handler struct {
	mail      Mailer
	memo      Memo
	sender    string
	instances map[string]config.Instance
	now       func() time.Time
}

// New returns the step; sender is the mailbox the mail comes from and
// instances give the URL the guest signs in at.
func New(mail Mailer, memo Memo, sender string, instances map[string]config.Instance) *Handler {
	return &Handler{mail: mail, memo: memo, sender: sender, instances: instances, now: time.Now}
}

// Handle consumes io.guestflow.user.role_assigned.v1 and emits
// io.guestflow.user.onboarded.v1.
func (h *Handler) Handle(ctx context.Context, in event.Event) (*event.Event, error) {
	var d events.RoleAssigned
	if err := in.DataAs(&d); err != nil {
		return nil, failure.Permanent(failure.InvalidEvent, fmt.Errorf("role_assigned event data: %w", err))
	}
	out := events.Onboarded{RoleAssigned: d}
	if d.SendsEmail() {
		at, err := h.send(ctx, events.OnboardingID(in), d)
		if err != nil {
			return nil, err
		}
		out.NotifiedAt = at.UTC().Format(time.RFC3339)
	}
	next, err := events.Next(in, Name, events.TypeOnboarded, out, h.now())
	return &next, err
}

// send mails the user unless the memo says it already happened.
func (h *Handler) send(ctx context.Context, onboardingID string, d events.RoleAssigned) (time.Time, error) {
	var done sent
	if ok, err := h.memo.Get(ctx, Name, onboardingID, &done); err != nil || ok {
		return done.At, err
	}
	url := d.RedirectURL
	if inst, ok := h.instances[d.Instance]; ok {
		url = inst.URL
	}
	subject, html, err := Render(d, url)
	if err != nil {
		return time.Time{}, failure.Permanent(failure.InvalidEvent, err)
	}
	if err := h.mail.SendMail(ctx, directory.Mail{From: h.sender, To: d.Email, Subject: subject, HTML: html}); err != nil {
		return time.Time{}, err
	}
	at := h.now().UTC()
	if err := h.memo.Put(ctx, Name, onboardingID, sent{At: at}); err != nil {
		return time.Time{}, fmt.Errorf("mail sent but not recorded (a retry will send it again): %w", err)
	}
	return at, nil
}
