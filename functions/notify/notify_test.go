package notify_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/guestflow/guestflow/functions/notify"
	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/directory"
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

var instances = map[string]config.Instance{"sales": {URL: "https://contoso-sales.crm4.dynamics.com"}}

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
	d.Message = "<script>alert('x')</script>\nSee you & the team"
	d.RedirectURL = "https://elsewhere.example/landing"
	d.InviteRedeemURL = "https://login.example/redeem?a=1&b=2"
	d.SendEmail = sendEmail
	return d
}

func TestMailsOncePerOnboarding(t *testing.T) {
	box, log := &outbox{}, memLog{}
	h := notify.New(box, log, "onboarding@contoso.com", instances)
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
	next, err := notify.New(box, memLog{}, "onboarding@contoso.com", instances).Handle(context.Background(), input(t, data(&no)))
	if err != nil {
		t.Fatal(err)
	}
	var out events.Onboarded
	_ = next.DataAs(&out)
	if len(box.sent) != 0 || out.NotifiedAt != "" || next.Type() != events.TypeOnboarded {
		t.Errorf("mails %d, notifiedAt %q, type %s", len(box.sent), out.NotifiedAt, next.Type())
	}
}
