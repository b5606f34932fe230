package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// slowStart is a JetStream whose first consumer lookups time out, as a
// cluster's do while it elects a leader or creates the same consumer for
// another replica.
type slowStart struct {
	jetstream.JetStream
	timeouts atomic.Int32
}

func (s *slowStart) Consumer(ctx context.Context, stream, name string) (jetstream.Consumer, error) {
	if s.timeouts.Add(-1) >= 0 {
		return nil, fmt.Errorf("consumer info: %w", context.DeadlineExceeded)
	}
	return s.JetStream.Consumer(ctx, stream, name)
}

// A start that only times out is tried again rather than ending the
// worker.
func TestStartOutlastsTimeouts(t *testing.T) {
	h := newHarness(t)
	js := &slowStart{JetStream: h.js}
	js.timeouts.Store(2)
	var l logs
	o := fast
	o.Logger = l.logger()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- worker.Run(ctx, js, worker.Step{Name: "invite", Subject: events.SubjectJoined, Handler: permanent}, o)
	}()
	l.wait(t, "worker started")
	var warned int
	for _, r := range l.all(slog.LevelWarn) {
		if r.msg == "making sure of the consumer timed out; trying again in a second" {
			warned++
		}
	}
	if warned != 2 {
		t.Errorf("%d warnings about the time-outs, want 2: %v", warned, l.all(slog.LevelWarn))
	}
	h.publishJoined("after-timeouts")
	h.settled()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
