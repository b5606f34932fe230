package events_test

import (
	"encoding/json"
	"maps"
	"regexp"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"

	"github.com/guestflow/guestflow/pkg/events"
)

var (
	now         = time.Date(2024, 5, 1, 11, 30, 0, 0, time.FixedZone("CEST", 2*3600))
	traceFormat = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$`)
)

const inputTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func joinedEvent(t *testing.T, id string, ext map[string]any) event.Event {
	t.Helper()
	j, err := events.ParseJoined([]byte(joinedData))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := events.NewJoined(id, "hr/workday", j, now)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range ext {
		ev.SetExtension(k, v)
	}
	return ev
}

func next(t *testing.T, in event.Event, step, typ string) event.Event {
	t.Helper()
	var data map[string]any
	if err := json.Unmarshal(in.Data(), &data); err != nil {
		t.Fatal(err)
	}
	data["userId"] = "u-1"
	out, err := events.Next(in, step, typ, data, now)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return out
}

func traceOf(t *testing.T, ev event.Event) (traceID, parentID, flags string) {
	t.Helper()
	s, _ := ev.Extensions()[events.ExtTraceparent].(string)
	m := traceFormat.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("traceparent %q is not a W3C version 00 traceparent", s)
	}
	return m[1], m[2], m[3]
}

func TestNextAttributes(t *testing.T) {
	in := joinedEvent(t, "hr-1", nil)
	in.SetSubject("Ana.Silva@Fabrikam.com")
	out := next(t, in, "invite", events.TypeInvited)

	id, err := uuid.Parse(out.ID())
	if err != nil || id.Version() != 5 {
		t.Errorf("id %q is not a name-based (SHA-1) UUID", out.ID())
	}
	if out.SpecVersion() != "1.0" || out.Source() != "guestflow/invite" || out.Type() != events.TypeInvited {
		t.Errorf("attributes: %s", out)
	}
	if out.Subject() != "ana.silva@fabrikam.com" {
		t.Errorf("subject %q", out.Subject())
	}
	if !out.Time().Equal(now) || out.Time().Location() != time.UTC {
		t.Errorf("time %v, want %v in UTC", out.Time(), now)
	}
	if out.DataContentType() != "application/json" || out.DataBase64 {
		t.Errorf("datacontenttype %q base64 %v", out.DataContentType(), out.DataBase64)
	}
	var data struct{ Email, UserID string }
	if err := out.DataAs(&data); err != nil || data.UserID != "u-1" || data.Email != "ana.silva@fabrikam.com" {
		t.Errorf("data %s (%v)", out.Data(), err)
	}
	// Every emitted event must be publishable and consumable as it is.
	h, b, err := events.Encode(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.Decode(events.SubjectInvited, h, b); err != nil {
		t.Errorf("the next event does not decode on its subject: %v", err)
	}
}

func TestNextIDIsDeterministic(t *testing.T) {
	in := joinedEvent(t, "hr-1", nil)
	first := next(t, in, "invite", events.TypeInvited)
	redelivered := next(t, joinedEvent(t, "hr-1", nil), "invite", events.TypeInvited)
	if first.ID() != redelivered.ID() {
		t.Errorf("redelivered input got id %s, first %s", redelivered.ID(), first.ID())
	}
	if a, b := traceOf3(t, first), traceOf3(t, redelivered); a != b {
		t.Errorf("redelivered input got traceparent %s, first %s", b, a)
	}
	if other := next(t, joinedEvent(t, "hr-2", nil), "invite", events.TypeInvited); other.ID() == first.ID() {
		t.Error("two inputs got the same id")
	}
	if other := next(t, in, "license", events.TypeInvited); other.ID() == first.ID() {
		t.Error("two steps got the same id for one input")
	}
	// The separator keeps step and input id apart.
	a := next(t, joinedEvent(t, "bc", nil), "a", events.TypeInvited)
	b := next(t, joinedEvent(t, "c", nil), "ab", events.TypeInvited)
	if a.ID() == b.ID() {
		t.Error("step+id concatenation collides")
	}
}

func traceOf3(t *testing.T, ev event.Event) string {
	tr, p, f := traceOf(t, ev)
	return tr + p + f
}

func TestNextOnboardingID(t *testing.T) {
	tests := []struct {
		name string
		in   func(t *testing.T) event.Event
		want string // "" means the input's own id
	}{
		{"from joined", func(t *testing.T) event.Event { return joinedEvent(t, "hr-1", nil) }, "hr-1"},
		{"joined cannot claim another", func(t *testing.T) event.Event {
			return joinedEvent(t, "hr-1", map[string]any{events.ExtOnboardingID: "forged"})
		}, "hr-1"},
		{"carried from a later event", func(t *testing.T) event.Event {
			return next(t, joinedEvent(t, "hr-1", nil), "invite", events.TypeInvited)
		}, "hr-1"},
		{"later event without one", func(t *testing.T) event.Event {
			ev := next(t, joinedEvent(t, "hr-1", nil), "invite", events.TypeInvited)
			ev.SetExtension(events.ExtOnboardingID, nil)
			return ev
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in(t)
			want := tt.want
			if want == "" {
				want = in.ID()
			}
			if got := events.OnboardingID(in); got != want {
				t.Errorf("OnboardingID(in) = %q, want %q", got, want)
			}
			out := next(t, in, "license", events.TypeLicensed)
			if got := out.Extensions()[events.ExtOnboardingID]; got != want {
				t.Errorf("onboardingid %v, want %q", got, want)
			}
			if got := events.OnboardingID(out); got != want {
				t.Errorf("OnboardingID(out) = %q, want %q", got, want)
			}
		})
	}
}

func TestNextTraceparent(t *testing.T) {
	t.Run("child of the input", func(t *testing.T) {
		in := joinedEvent(t, "hr-1", map[string]any{events.ExtTraceparent: inputTrace, "tracestate": "vendor=1"})
		out := next(t, in, "invite", events.TypeInvited)
		trace, parent, flags := traceOf(t, out)
		if trace != "4bf92f3577b34da6a3ce929d0e0e4736" || flags != "01" {
			t.Errorf("trace %s flags %s, want the input's", trace, flags)
		}
		if parent == "00f067aa0ba902b7" || parent == "0000000000000000" {
			t.Errorf("parent id %s: want a new span", parent)
		}
		if out.Extensions()["tracestate"] != "vendor=1" {
			t.Errorf("tracestate %v not carried", out.Extensions()["tracestate"])
		}
	})
	t.Run("flags kept", func(t *testing.T) {
		in := joinedEvent(t, "hr-1", map[string]any{events.ExtTraceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"})
		if _, _, flags := traceOf(t, next(t, in, "invite", events.TypeInvited)); flags != "00" {
			t.Errorf("flags %s, want 00", flags)
		}
	})
	t.Run("later version read as 00", func(t *testing.T) {
		in := joinedEvent(t, "hr-1", map[string]any{events.ExtTraceparent: "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next"})
		if trace, _, _ := traceOf(t, next(t, in, "invite", events.TypeInvited)); trace != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("trace %s, want the input's", trace)
		}
	})
	t.Run("carried through the chain", func(t *testing.T) {
		invited := next(t, joinedEvent(t, "hr-1", nil), "invite", events.TypeInvited)
		licensed := next(t, invited, "license", events.TypeLicensed)
		t1, p1, _ := traceOf(t, invited)
		t2, p2, _ := traceOf(t, licensed)
		if t1 != t2 || p1 == p2 {
			t.Errorf("invited %s/%s, licensed %s/%s: want one trace, two spans", t1, p1, t2, p2)
		}
	})

	// Without a valid traceparent the invite step starts a trace whose id
	// follows from the onboarding id alone.
	newTrace := func(t *testing.T, id string, ext map[string]any) string {
		out := next(t, joinedEvent(t, id, ext), "invite", events.TypeInvited)
		trace, _, flags := traceOf(t, out)
		if flags != "01" {
			t.Errorf("flags %s, want 01", flags)
		}
		if _, ok := out.Extensions()["tracestate"]; ok {
			t.Error("tracestate of an invalid traceparent was kept")
		}
		return trace
	}
	fresh := newTrace(t, "hr-1", nil)
	if again := newTrace(t, "hr-1", nil); again != fresh {
		t.Errorf("new trace not deterministic: %s then %s", fresh, again)
	}
	if other := newTrace(t, "hr-2", nil); other == fresh {
		t.Error("two onboardings share a trace")
	}
	for _, bad := range []string{
		"",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",   // upper-case
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",   // zero trace id
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   // zero parent id
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // forbidden version
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // version 00 is exact
		"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",    // short
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
	} {
		t.Run("invalid "+bad, func(t *testing.T) {
			if got := newTrace(t, "hr-1", map[string]any{events.ExtTraceparent: bad, "tracestate": "vendor=1"}); got != fresh {
				t.Errorf("trace %s, want the onboarding's own %s", got, fresh)
			}
		})
	}
}

func TestNextCarriesExtensions(t *testing.T) {
	in := joinedEvent(t, "hr-1", map[string]any{"partnerid": "p-7", "retries": int32(2), "urgent": true})
	out := next(t, in, "invite", events.TypeInvited)
	got := maps.Clone(out.Extensions())
	delete(got, events.ExtTraceparent)
	want := map[string]any{"partnerid": "p-7", "retries": int32(2), "urgent": true, events.ExtOnboardingID: "hr-1",
		events.ExtJoinedTime: "2024-05-01T09:30:00Z"}
	if !maps.Equal(got, want) {
		t.Errorf("extensions %#v, want %#v", got, want)
	}
}

func TestNextSubjectFromData(t *testing.T) {
	in := joinedEvent(t, "hr-1", nil)
	in.SetSubject("")
	out := next(t, in, "invite", events.TypeInvited)
	if out.Subject() != "ana.silva@fabrikam.com" {
		t.Errorf("subject %q", out.Subject())
	}
}

func TestNextErrors(t *testing.T) {
	in := joinedEvent(t, "hr-1", nil)
	tests := []struct {
		name string
		in   event.Event
		step string
		typ  string
		data any
	}{
		{"unknown type", in, "invite", "io.guestflow.user.left.v1", map[string]any{}},
		{"no step", in, "", events.TypeInvited, map[string]any{}},
		{"data not an object", in, "invite", events.TypeInvited, []string{"x"}},
		{"bytes are not an object", in, "invite", events.TypeInvited, []byte(`{}`)},
		{"data not JSON", in, "invite", events.TypeInvited, map[string]any{"c": make(chan int)}},
		{"no subject anywhere", func() event.Event { e := in.Clone(); e.SetSubject(""); return e }(), "invite", events.TypeInvited, map[string]any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if out, err := events.Next(tt.in, tt.step, tt.typ, tt.data, now); err == nil {
				t.Errorf("Next succeeded: %s", out)
			}
		})
	}
}

func TestNewJoined(t *testing.T) {
	j := events.Joined{Email: " Ana.Silva@Fabrikam.com ", GivenName: "Ana", Surname: "Silva", UsageLocation: "PT", Instance: "sales"}
	ev, err := events.NewJoined("hr-1", "guestflow/publish", j, now)
	if err != nil {
		t.Fatal(err)
	}
	if ev.SpecVersion() != "1.0" || ev.ID() != "hr-1" || ev.Source() != "guestflow/publish" || ev.Type() != events.TypeJoined {
		t.Errorf("attributes: %s", ev)
	}
	if ev.Subject() != "ana.silva@fabrikam.com" {
		t.Errorf("subject %q", ev.Subject())
	}
	if !ev.Time().Equal(now) || ev.Time().Location() != time.UTC {
		t.Errorf("time %v", ev.Time())
	}
	if ev.DataContentType() != "application/json" {
		t.Errorf("datacontenttype %q", ev.DataContentType())
	}
	if len(ev.Extensions()) != 0 {
		t.Errorf("extensions %v: a joined event starts the onboarding and its trace", ev.Extensions())
	}
	h, b, err := events.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := events.Decode(events.SubjectJoined, h, b)
	if err != nil {
		t.Fatalf("Decode(Encode(NewJoined)): %v", err)
	}
	parsed, err := events.ParseJoined(got.Data())
	if err != nil {
		t.Fatalf("ParseJoined: %v", err)
	}
	if parsed.Email != "ana.silva@fabrikam.com" || parsed.DisplayName != "Ana Silva" {
		t.Errorf("parsed %+v", parsed)
	}

	for _, bad := range [][2]string{{"", "guestflow/publish"}, {" ", "guestflow/publish"}, {"hr-1", ""}} {
		if _, err := events.NewJoined(bad[0], bad[1], j, now); err == nil {
			t.Errorf("NewJoined(%q, %q) succeeded", bad[0], bad[1])
		}
	}
}
