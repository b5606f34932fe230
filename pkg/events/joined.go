package events

import (
	"fmt"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// NewJoined builds the joined event that starts an onboarding, as HR
// systems, `guestflow publish` and `guestflow import` send it. The id is the
// caller's because only the caller knows what makes two publishes the same
// (an HR record, a CSV line); it becomes the onboarding id.
//
// j is sent as given: call ParseJoined on it first to reject a bad record
// before it is published rather than when it is dead-lettered.
func NewJoined(id, source string, j Joined, now time.Time) (event.Event, error) {
	if strings.TrimSpace(id) == "" || strings.TrimSpace(source) == "" {
		return event.Event{}, fmt.Errorf("events: a joined event needs an id and a source")
	}
	ev := event.New()
	ev.SetID(id)
	ev.SetSource(source)
	ev.SetType(TypeJoined)
	ev.SetSubject(strings.ToLower(strings.TrimSpace(j.Email)))
	ev.SetTime(now.UTC())
	if err := setData(&ev, j); err != nil {
		return event.Event{}, err
	}
	if err := ev.Validate(); err != nil {
		return event.Event{}, fmt.Errorf("events: joined event: %w", err)
	}
	return ev, nil
}
