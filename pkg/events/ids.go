package events

import (
	"encoding/hex"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/google/uuid"
)

// namespace roots every id guestflow derives. It must never change: a new
// namespace would give an input redelivered after an upgrade a new output id,
// and the duplicate window would no longer stop the flow from forking.
var namespace = uuid.MustParse("eb400622-6fc2-4ec2-81a4-6978a291a130")

// nextID names the event that step emits for the input with id inID. The NUL
// separator keeps ("a", "b\x00c") and ("a\x00b", "c") apart.
func nextID(step, inID string) string {
	return uuid.NewSHA1(namespace, []byte(step+"\x00"+inID)).String()
}

// OnboardingID returns the id that ties together every event and dead letter
// of one onboarding: the onboardingid extension, or the event's own id when it
// has none. For a joined event it is always the event's own id, because the
// contract defines the onboarding id as the id of the joined event; an
// onboardingid a publisher put on a joined event is carried, not believed.
func OnboardingID(ev event.Event) string {
	if ev.Type() == TypeJoined {
		return ev.ID()
	}
	if s, err := types.ToString(ev.Extensions()[ExtOnboardingID]); err == nil && s != "" {
		return s
	}
	return ev.ID()
}

// TraceID returns the W3C trace id, 32 lower-case hex digits, of the trace
// ev belongs to: its traceparent's, or, when it has no valid one, the trace
// id Next gives the event it builds from ev (derived from the onboarding
// id). Log lines about ev then name the trace its onboarding is recorded
// under either way.
func TraceID(ev event.Event) string {
	s, _ := types.ToString(ev.Extensions()[ExtTraceparent])
	if tp, ok := parseTraceparent(s); ok {
		return hex.EncodeToString(tp.traceID[:])
	}
	tp := newTrace(OnboardingID(ev), "")
	return hex.EncodeToString(tp.traceID[:])
}

// DerivedTraceparent is the trace context an onboarding that arrived
// without a valid traceparent is traced under: the trace TraceID names,
// with a parent span id derived from ev's id. It stands for the publisher,
// which did not trace; a tracer makes the first step's span its child, so
// that span, every retry of it and every log line share one trace id.
func DerivedTraceparent(ev event.Event) string {
	return newTrace(OnboardingID(ev), ev.ID()).String()
}

// JoinedTime returns when ev's onboarding joined: the time of a joined
// event, and for later events their joinedtime extension (see Next). It
// reports false when that is unknown: a joined event without a time, an
// event built before guestflow carried joinedtime.
func JoinedTime(ev event.Event) (time.Time, bool) {
	if ev.Type() == TypeJoined {
		return ev.Time(), !ev.Time().IsZero()
	}
	v, ok := ev.Extensions()[ExtJoinedTime]
	if !ok {
		return time.Time{}, false
	}
	t, err := types.ToTime(v)
	return t, err == nil && !t.IsZero()
}
