package events_test

import (
	"testing"
	"time"

	"github.com/guestflow/guestflow/pkg/events"
)

// TestJoinedTimeIsCarriedToTheLastEvent: the invite step's output names
// the joined event's time, every later event carries it unchanged, and it
// survives the wire.
func TestJoinedTimeIsCarriedToTheLastEvent(t *testing.T) {
	in := joinedEvent(t, "hr-1", map[string]any{events.ExtJoinedTime: "1999-01-01T00:00:00Z"}) // not believed
	ev := in
	for i, typ := range []string{events.TypeInvited, events.TypeLicensed, events.TypeRoleAssigned, events.TypeOnboarded} {
		out, err := events.Next(ev, "step", typ, map[string]any{"email": "ana.silva@fabrikam.com"}, now.Add(time.Duration(i+1)*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		header, body, err := events.Encode(out)
		if err != nil {
			t.Fatal(err)
		}
		subject, _ := events.Subject(typ)
		if ev, err = events.Decode(subject, header, body); err != nil {
			t.Fatal(err)
		}
		if got, ok := events.JoinedTime(ev); !ok || !got.Equal(now) {
			t.Errorf("%s: joined time %v (%v), want the joined event's %v", typ, got, ok, now)
		}
	}
}

func TestJoinedTimeWithoutATime(t *testing.T) {
	in := joinedEvent(t, "hr-1", nil)
	in.SetTime(time.Time{})
	if _, ok := events.JoinedTime(in); ok {
		t.Error("a joined event without a time reports a joined time")
	}
	later := now.Add(time.Hour)
	out, err := events.Next(in, "invite", events.TypeInvited, map[string]any{"email": "a@b.example"}, later)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := events.JoinedTime(out); !ok || !got.Equal(later) {
		t.Errorf("joined time %v (%v), want the invite step's %v", got, ok, later)
	}
	out.SetExtension(events.ExtJoinedTime, nil) // built by an older release
	if _, ok := events.JoinedTime(out); ok {
		t.Error("an event without joinedtime reports a joined time")
	}
}

func TestTraceIDIsTheTraceOfTheOnboarding(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	in := joinedEvent(t, "hr-1", map[string]any{events.ExtTraceparent: tp})
	if got := events.TraceID(in); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("trace id %q, want the traceparent's", got)
	}
	// Without a valid traceparent, the trace the next event starts.
	for _, ext := range []map[string]any{nil, {events.ExtTraceparent: "00-zz"}} {
		in := joinedEvent(t, "hr-1", ext)
		out := next(t, in, "invite", events.TypeInvited)
		want, _, _ := traceOf(t, out)
		if got := events.TraceID(in); got != want {
			t.Errorf("%v: trace id %q, want the next event's %q", ext, got, want)
		}
		if got := events.TraceID(out); got != want {
			t.Errorf("%v: the next event's trace id %q, want %q", ext, got, want)
		}
	}
}
