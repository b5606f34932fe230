package timeline_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/dlq"
	"github.com/guestflow/guestflow/internal/timeline"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// t0 is when the hand-made onboardings start.
var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// msg is one stored message of the GUESTFLOW stream.
type msg struct {
	subject string
	header  nats.Header
	body    []byte
}

// flow builds the events of onboarding id for email, as the workers
// would emit them, each a second after the one before: joined, invited,
// licensed, role_assigned, onboarded, cut to the first n.
func flow(t testing.TB, id, email string, n int) []msg {
	t.Helper()
	j := events.Joined{Email: email, GivenName: "Ana", Surname: "Silva", UsageLocation: "PT", Instance: "sales",
		Roles: []string{"Salesperson"}, License: "DYN365_ENTERPRISE_SALES"}
	joined, err := events.NewJoined(id, "hr/test", j, t0)
	if err != nil {
		t.Fatal(err)
	}
	invited := events.Invited{Joined: j, UserID: "u-" + id, UserPrincipalName: "ana_fabrikam.com#EXT#@contoso.onmicrosoft.com",
		UserType: "Guest", GroupID: "g-1"}
	licensed := events.Licensed{Invited: invited, SkuID: "sku-1", SkuPartNumber: "DYN365_ENTERPRISE_SALES"}
	role := events.RoleAssigned{Licensed: licensed, SystemUserID: "su-1", AssignedRoles: []events.Role{{ID: "r-1", Name: "Salesperson"}}}
	onboarded := events.Onboarded{RoleAssigned: role, NotifiedAt: "2026-03-01T09:00:04Z"}
	evs := []event.Event{joined}
	for i, s := range []struct {
		step, typ string
		data      any
	}{
		{"invite", events.TypeInvited, invited},
		{"license", events.TypeLicensed, licensed},
		{"role", events.TypeRoleAssigned, role},
		{"notify", events.TypeOnboarded, onboarded},
	} {
		ev, err := events.Next(evs[len(evs)-1], s.step, s.typ, s.data, t0.Add(time.Duration(i+1)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	var out []msg
	for i, ev := range evs[:n] {
		h, body, err := events.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		header := nats.Header(h)
		if i > 0 {
			header.Set(worker.HeaderAttempts, strconv.Itoa(i)) // 1, 2, 3, 4: tells the entries apart
		}
		subject, _ := events.Subject(ev.Type())
		out = append(out, msg{subject: subject, header: header, body: body})
	}
	return out
}

// replayed is m as `guestflow dlq replay` republishes it.
func replayed(m msg) msg {
	h := nats.Header{}
	for k, v := range m.header {
		h[k] = v
	}
	h.Del(worker.HeaderAttempts)
	h.Set(jetstream.MsgIDHeader, "replay:1234")
	return msg{subject: m.subject, header: h, body: m.body}
}

// records numbers msgs as stream sequences from 1.
func records(msgs ...msg) []timeline.Record {
	var out []timeline.Record
	for i, m := range msgs {
		out = append(out, timeline.NewRecord(uint64(i+1), m.subject, t0.Add(time.Duration(i)*time.Second), m.header, m.body))
	}
	return out
}

// deadLetter is m dead-lettered by step for reason, at sequence seq of the
// DLQ stream.
func deadLetter(seq uint64, step, reason string, m msg, withID bool) dlq.Letter {
	h := nats.Header{}
	for k, v := range m.header {
		h[k] = v
	}
	h.Del(worker.HeaderAttempts)
	h.Set(worker.HeaderStep, step)
	h.Set(worker.HeaderReason, reason)
	h.Set(worker.HeaderError, "it failed: "+reason)
	h.Set(worker.HeaderAttempts, "1")
	h.Set(worker.HeaderOriginalSubject, m.subject)
	h.Set(worker.HeaderFailedAt, t0.Add(time.Minute).Format(time.RFC3339))
	if withID {
		ev, _ := events.Decode(m.subject, m.header, m.body)
		h.Set(worker.HeaderOnboardingID, events.OnboardingID(ev))
	}
	return dlq.Parse(&jetstream.RawStreamMsg{Subject: worker.DLQPrefix + step, Sequence: seq, Header: h, Data: m.body, Time: t0.Add(time.Minute)})
}

func mustSubject(typ string) string {
	s, _ := events.Subject(typ)
	return s
}

// structured is a minimal structured event of typ with data.
func structured(t *testing.T, typ, data string) []byte {
	t.Helper()
	return []byte(`{"specversion":"1.0","id":"e-1","source":"guestflow/test","type":"` + typ +
		`","subject":"a@b.example","onboardingid":"ob-1","datacontenttype":"application/json","data":` + data + `}`)
}
