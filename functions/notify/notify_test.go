package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/guestflow/guestflow/functions/notify"
	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/directory"
	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/identity"
	"github.com/guestflow/guestflow/pkg/events"
)

type outbox struct{ sent []directory.Mail }

func (o *outbox) SendMail(_ context.Context, m directory.Mail) error {
	o.sent = append(o.sent, m)
	return nil
}

// memLog is an in-memory memo.
type memLog map[string][]byte

func (l memLog) Get(_ context.Context, step, id string, v any) (bool, error) {
	b, ok := l[step+"."+id]
	if !ok {
		return false, nil
	}
	return true, json.Unmarshal(b, v)
}

func (l memLog) Put(_ context.Context, step, id string, v any) error {
	b, err := json.Marshal(v)
	l[step+"."+id] = b
	return err
}

// instances is a configuration's instances with their defaults filled in,
// as main passes them.
func instances() map[string]config.Instance {
	c := config.Config{Instances: map[string]config.Instance{"sales": {
		URL: "https://contoso-sales.crm4.dynamics.com", License: "DYN365_ENTERPRISE_SALES", Roles: []string{"Salesperson"},
	}}}
	c.SetDefaults()
	return c.Instances
}

// directoryOf is a directory in memory for the identity check.
type directoryOf []directory.User

func (d directoryOf) GetUser(_ context.Context, id string) (directory.User, error) {
	for _, u := range d {
		if u.ID == id {
			return u, nil
		}
	}
	return directory.User{}, errors.New("no such user")
}

const recordedLink = "https://login.example/redeem?a=1&b=2"

// recorded is a memo holding the invite step's record of onb-1: Ana,
// guest-1, invited with recordedLink.
func recorded() memLog {
	b, _ := json.Marshal(identity.Record{Email: "ana@fabrikam.com", UserID: "guest-1", UserType: "Guest", RedeemURL: recordedLink})
	return memLog{identity.Step + ".onb-1": b}
}

// step is the notify step on log, with no directory users unless given.
func step(box *outbox, log memLog, users ...directory.User) *notify.Handler {
	return notify.New(box, log, identity.New(log, directoryOf(users), instances()), notify.Options{
		Sender: "onboarding@contoso.com", AuthorityHost: "https://login.example/",
	})
}

func input(t *testing.T, d events.RoleAssigned) event.Event {
	t.Helper()
	ev := event.New()
	ev.SetID("role-out-1")
	ev.SetSource("guestflow/role")
	ev.SetType(events.TypeRoleAssigned)
	ev.SetSubject(d.Email)
	ev.SetExtension(events.ExtOnboardingID, "onb-1")
	if err := ev.SetData(event.ApplicationJSON, d); err != nil {
		t.Fatal(err)
	}
	return ev
}

func data(sendEmail *bool) events.RoleAssigned {
	var d events.RoleAssigned
	d.Email, d.DisplayName, d.Instance = "ana@fabrikam.com", `Ana <img src=x onerror=alert(1)>`, "sales"
	d.Roles, d.License, d.UserID = []string{"Salesperson"}, "DYN365_ENTERPRISE_SALES", "guest-1"
	d.Message = "<script>alert('x')</script>\nSee you & the team"
	d.RedirectURL = "https://myapps.microsoft.com/landing"
	d.InviteRedeemURL = recordedLink
	d.SendEmail = sendEmail
	return d
}

func TestMailsOncePerOnboarding(t *testing.T) {
	box := &outbox{}
	h := step(box, recorded())
	in := input(t, data(nil))
	first, err := h.Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	again, err := h.Handle(context.Background(), in) // a redelivery
	if err != nil {
		t.Fatal(err)
	}
	if len(box.sent) != 1 {
		t.Fatalf("%d mails for one onboarding, want 1", len(box.sent))
	}
	var a, b events.Onboarded
	_ = first.DataAs(&a)
	_ = again.DataAs(&b)
	if a.NotifiedAt == "" || a.NotifiedAt != b.NotifiedAt || first.ID() != again.ID() {
		t.Errorf("a redelivery must yield the same event: %s/%s, %s/%s", first.ID(), a.NotifiedAt, again.ID(), b.NotifiedAt)
	}
	m := box.sent[0]
	if m.From != "onboarding@contoso.com" || m.To != "ana@fabrikam.com" {
		t.Errorf("mail from %q to %q", m.From, m.To)
	}
	for _, want := range []string{
		`href="https://contoso-sales.crm4.dynamics.com"`,  // where to sign in: the instance, not the redirect
		`https://login.example/redeem?a=1&amp;b=2`,        // the redemption link
		"&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;", // the message, inert
		"Ana &lt;img src=x onerror=alert(1)&gt;",          // the name, inert
		"Unified Service Desk", "App for Outlook", "server-side email synchronization", "Office 365 Groups",
	} {
		if !strings.Contains(m.HTML, want) {
			t.Errorf("mail lacks %q:\n%s", want, m.HTML)
		}
	}
	if strings.Contains(m.HTML, "<script>") || strings.Contains(m.HTML, "<img") {
		t.Errorf("markup from the event reached the mail:\n%s", m.HTML)
	}
}

func TestSendEmailFalseSkipsTheMail(t *testing.T) {
	box := &outbox{}
	no := false
	next, err := step(box, recorded()).Handle(context.Background(), input(t, data(&no)))
	if err != nil {
		t.Fatal(err)
	}
	var out events.Onboarded
	_ = next.DataAs(&out)
	if len(box.sent) != 0 || out.NotifiedAt != "" || next.Type() != events.TypeOnboarded {
		t.Errorf("mails %d, notifiedAt %q, type %s", len(box.sent), out.NotifiedAt, next.Type())
	}
}

// refused runs the step on d and wants the failure reason and no mail.
func refused(t *testing.T, h *notify.Handler, box *outbox, d events.RoleAssigned, reason string) {
	t.Helper()
	_, err := h.Handle(context.Background(), input(t, d))
	if v := failure.Classify(err); v.Retryable || v.Reason != reason {
		t.Errorf("got %+v (%v), want the permanent %s", v, err, reason)
	}
	if len(box.sent) != 0 {
		t.Errorf("%d mails sent, want none", len(box.sent))
	}
}

func TestMailsOnlyLinksTheConfigurationAndGraphVouchFor(t *testing.T) {
	t.Run("a forged redeem link gives way to the recorded one", func(t *testing.T) {
		box := &outbox{}
		d := data(nil)
		d.InviteRedeemURL = "https://attacker.example/phish"
		if _, err := step(box, recorded()).Handle(context.Background(), input(t, d)); err != nil {
			t.Fatal(err)
		}
		if len(box.sent) != 1 || strings.Contains(box.sent[0].HTML, "attacker.example") || !strings.Contains(box.sent[0].HTML, "https://login.example/redeem") {
			t.Errorf("mail does not carry only the recorded link:\n%v", box.sent)
		}
	})
	guest := directory.User{ID: "guest-1", Mail: "ana@fabrikam.com", UserType: "Guest"}
	t.Run("without a record a link off the sign-in host is refused", func(t *testing.T) {
		box := &outbox{}
		d := data(nil)
		d.InviteRedeemURL = "https://attacker.example/phish"
		refused(t, step(box, memLog{}, guest), box, d, failure.RedirectNotAllowed)
	})
	t.Run("without a record a link on the sign-in host is mailed", func(t *testing.T) {
		box := &outbox{}
		if _, err := step(box, memLog{}, guest).Handle(context.Background(), input(t, data(nil))); err != nil {
			t.Fatal(err)
		}
		if len(box.sent) != 1 {
			t.Errorf("%d mails, want 1", len(box.sent))
		}
	})
	t.Run("an unknown instance is not mailed with the event's redirect", func(t *testing.T) {
		box := &outbox{}
		d := data(nil)
		d.Instance = "attacker"
		refused(t, step(box, recorded()), box, d, failure.UnknownInstance)
	})
	t.Run("a redirect off the allowed hosts is refused", func(t *testing.T) {
		box := &outbox{}
		d := data(nil)
		d.RedirectURL = "https://attacker.example/landing"
		refused(t, step(box, recorded()), box, d, failure.RedirectNotAllowed)
	})
}

func TestMailsOnlyTheOnboardingsUser(t *testing.T) {
	t.Run("another user than the recorded one", func(t *testing.T) {
		box := &outbox{}
		d := data(nil)
		d.UserID = "someone-else"
		refused(t, step(box, recorded()), box, d, failure.IdentityMismatch)
	})
	t.Run("another address than the recorded one", func(t *testing.T) {
		box := &outbox{}
		d := data(nil)
		d.Email = "eve@attacker.example"
		refused(t, step(box, recorded()), box, d, failure.IdentityMismatch)
	})
	t.Run("without a record, a guest with other addresses", func(t *testing.T) {
		box := &outbox{}
		refused(t, step(box, memLog{}, directory.User{ID: "guest-1", Mail: "bob@fabrikam.com", UserType: "Guest"}), box, data(nil), failure.IdentityMismatch)
	})
	t.Run("an id that already mailed another address", func(t *testing.T) {
		box, log := &outbox{}, recorded()
		b, _ := json.Marshal(map[string]string{"at": "2026-11-30T10:00:00Z", "to": "bob@fabrikam.com"})
		log["notify.onb-1"] = b
		refused(t, step(box, log), box, data(nil), failure.OnboardingIDReused)
	})
}

func TestAReturningGuestIsToldSigningInRedeemsOnlyWhilePending(t *testing.T) {
	for state, want := range map[string]bool{"PendingAcceptance": true, "Accepted": false} {
		b, _ := json.Marshal(identity.Record{Email: "ana@fabrikam.com", UserID: "guest-1", UserType: "Guest", Existing: true, ExternalUserState: state})
		box := &outbox{}
		d := data(nil)
		d.InviteRedeemURL = ""
		if _, err := step(box, memLog{identity.Step + ".onb-1": b}).Handle(context.Background(), input(t, d)); err != nil {
			t.Fatal(err)
		}
		if len(box.sent) != 1 {
			t.Fatalf("%s: %d mails", state, len(box.sent))
		}
		html := box.sent[0].HTML
		if got := strings.Contains(html, "signing in at the link below accepts it"); got != want {
			t.Errorf("%s: says signing in redeems: %v, want %v\n%s", state, got, want, html)
		}
		if strings.Contains(html, "First accept your invitation") {
			t.Errorf("%s: offers an invitation link it does not have:\n%s", state, html)
		}
	}
}
