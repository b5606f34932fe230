package worker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// okOrDeadLetter emits the next event for inputs whose onboarding id starts
// with "ok" and dead-letters the others.
var okOrDeadLetter = worker.HandlerFunc(func(ctx context.Context, in event.Event) (*event.Event, error) {
	if strings.HasPrefix(events.OnboardingID(in), "ok") {
		return emitInvited(ctx, in)
	}
	return nil, failure.Permanent(failure.UnknownInstance, errors.New(`instance "nope" is not configured`))
})

func TestSharedStateDeletedUnderARunningWorkerIsCreatedAgain(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		delete func(h *harness) error
	}{
		{"lease bucket", func(h *harness) error { return h.js.DeleteKeyValue(ctx, worker.LeaseBucket) }},
		{"dead-letter stream", func(h *harness) error { return h.js.DeleteStream(ctx, worker.DLQStream) }},
		{"consumer", func(h *harness) error { return h.js.DeleteConsumer(ctx, worker.Stream, "invite") }},
		{"event stream", func(h *harness) error { return h.js.DeleteStream(ctx, worker.Stream) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			stats := new(worker.Stats)
			o := fast
			o.Stats = stats
			h.run(okOrDeadLetter, o)
			h.publishJoined("ok-1")
			h.find(worker.Stream, events.SubjectInvited, "ok-1")
			h.publishJoined("bad-1")
			h.find(worker.DLQStream, worker.DLQPrefix+"invite", "bad-1")
			h.settled()

			if err := tc.delete(h); err != nil {
				t.Fatal(err)
			}
			// Inputs can only be published once the event stream and the
			// consumer are back.
			h.waitForConsumer()
			h.publishJoined("ok-2")
			h.find(worker.Stream, events.SubjectInvited, "ok-2")
			h.publishJoined("bad-2")
			h.find(worker.DLQStream, worker.DLQPrefix+"invite", "bad-2")
			h.settled()
			if _, err := h.js.KeyValue(ctx, worker.LeaseBucket); err != nil {
				t.Errorf("lease bucket: %v", err)
			}
			if stats.Recreated.Load() == 0 {
				t.Error("Stats.Recreated not counted")
			}
		})
	}
}

// waitForConsumer waits until the invite consumer exists.
func (h *harness) waitForConsumer() {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := h.js.Consumer(context.Background(), worker.Stream, "invite"); err == nil {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatal("the worker did not create its consumer again")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
