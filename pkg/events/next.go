package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// Next builds the event that step emits after consuming in. Everything about
// it derives from in, so a redelivered input yields the same event (same id,
// so the duplicate window drops the second publish) and a worker needs
// nothing but its input:
//   - id: a name-based UUID of step and in's id;
//   - source "guestflow/<step>", type typ, time now in UTC;
//   - subject: in's, lower-cased, else the email in data;
//   - every extension of in, unchanged, except onboardingid (see
//     OnboardingID) and traceparent: a child span of in's trace, or a new
//     trace derived from the onboarding id when in has no valid one (its
//     tracestate is then dropped, as W3C requires);
//   - joinedtime: for a joined input its time (or now, when it has none),
//     whatever joinedtime it came with; later inputs carry theirs.
func Next(in event.Event, step, typ string, data any, now time.Time) (event.Event, error) {
	if step == "" || in.ID() == "" {
		return event.Event{}, fmt.Errorf("events: next needs a step and an input with an id")
	}
	if _, ok := Subject(typ); !ok {
		return event.Event{}, fmt.Errorf("events: next: unknown type %q", typ)
	}
	out := event.New()
	id := nextID(step, in.ID())
	out.SetID(id)
	out.SetSource("guestflow/" + step)
	out.SetType(typ)
	out.SetTime(now.UTC())
	if err := setData(&out, data); err != nil {
		return event.Event{}, err
	}
	subject := strings.ToLower(in.Subject())
	if subject == "" {
		subject = emailIn(out.Data())
	}
	if subject == "" {
		return event.Event{}, fmt.Errorf("events: next: input %s has no subject and the data no email", in.ID())
	}
	out.SetSubject(subject)
	for name, v := range in.Extensions() {
		out.SetExtension(name, v)
	}
	onboarding := OnboardingID(in)
	out.SetExtension(ExtOnboardingID, onboarding)
	if in.Type() == TypeJoined {
		// A joinedtime a publisher put on a joined event is not
		// believed, as its onboardingid is not: the onboarding starts
		// with the joined event.
		joined := in.Time()
		if joined.IsZero() {
			joined = now
		}
		out.SetExtension(ExtJoinedTime, joined.UTC().Format(time.RFC3339Nano))
	}
	parent, _ := types.ToString(in.Extensions()[ExtTraceparent])
	if tp, ok := parseTraceparent(parent); ok {
		out.SetExtension(ExtTraceparent, tp.child(id).String())
	} else {
		out.SetExtension(ExtTraceparent, newTrace(onboarding, id).String())
		out.SetExtension(ExtTracestate, nil)
	}
	if err := out.Validate(); err != nil {
		return event.Event{}, fmt.Errorf("events: next: %w", err)
	}
	return out, nil
}

func emailIn(data []byte) string {
	var d struct {
		Email string `json:"email"`
	}
	_ = json.Unmarshal(data, &d)
	return strings.ToLower(strings.TrimSpace(d.Email))
}
