package worker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// slowStart is a JetStream whose first consumer lookups fail with errs in
// turn, as a cluster's do while it elects a leader (a time-out) or raises
// a stream's replicas ("insufficient resources").
type slowStart struct {
	jetstream.JetStream
	mu   sync.Mutex
	errs []error
}

func (s *slowStart) Consumer(ctx context.Context, stream, name string) (jetstream.Consumer, error) {
	s.mu.Lock()
	var err error
	if len(s.errs) > 0 {
		err, s.errs = s.errs[0], s.errs[1:]
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s.JetStream.Consumer(ctx, stream, name)
}

var insufficient = &jetstream.APIError{Code: 503, ErrorCode: 10023, Description: "insufficient resources"}

// A start that fails only as a cluster in motion makes it fail is tried
// again rather than ending the worker.
func TestStartOutlastsTimeouts(t *testing.T) {
	h := newHarness(t)
	js := &slowStart{JetStream: h.js, errs: []error{fmt.Errorf("consumer info: %w", context.DeadlineExceeded), fmt.Errorf("nats: %w", insufficient)}}
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
		if r.msg == "making sure of the consumer failed for now; trying again in a second" {
			warned++
		}
	}
	if warned != 2 {
		t.Errorf("%d warnings about the failed tries, want 2: %v", warned, l.all(slog.LevelWarn))
	}
	h.publishJoined("after-timeouts")
	h.settled()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// Any other failure at start ends the worker at once, as before.
func TestStartStopsOnOtherErrors(t *testing.T) {
	h := newHarness(t)
	notEnabled := &jetstream.APIError{Code: 503, ErrorCode: 10076, Description: "JetStream not enabled"}
	js := &slowStart{JetStream: h.js, errs: []error{fmt.Errorf("nats: %w", notEnabled)}}
	err := worker.Run(context.Background(), js, worker.Step{Name: "invite", Subject: events.SubjectJoined, Handler: permanent}, fast)
	if !errors.Is(err, notEnabled) {
		t.Errorf("Run: %v, want the error at start", err)
	}
}
