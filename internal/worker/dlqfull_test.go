package worker_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/guestflow/guestflow/internal/metrics"
	"github.com/guestflow/guestflow/internal/worker"
)

// A DLQ at its byte limit refuses the dead letter (discard new): every
// refusal is logged at Error as "dead-letter stream full" and counted, and
// the input is abandoned after DeadLetterTries of them. The gauges show
// how full the stream is.
func TestFullDLQRefusesDeadLettersLoudly(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	const limit = 1024
	// Most of the room taken by a dead letter of someone else's.
	if _, err := h.js.Publish(ctx, worker.DLQPrefix+"other", make([]byte, 600)); err != nil {
		t.Fatal(err)
	}
	stats := new(worker.Stats)
	var l logs
	o := fast
	o.Stats, o.Logger = stats, l.logger()
	o.PendingInterval = 20 * time.Millisecond
	o.Streams = worker.StreamOptions{DLQMaxBytes: limit}
	h.run(permanent, o)

	// The worker gave the existing DLQ the limit, keeping what it held.
	s, err := h.js.Stream(ctx, worker.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.CachedInfo(); c.Config.MaxBytes != limit || c.Config.Discard != jetstream.DiscardNew || c.State.Msgs != 1 {
		t.Fatalf("DLQ: MaxBytes %d, discard %v, %d messages; want %d, discard new, 1", c.Config.MaxBytes, c.Config.Discard, c.State.Msgs, limit)
	}

	h.publishJoined("full-1")
	h.settled()
	if got := stats.Abandoned.Load(); got != 1 {
		t.Errorf("Stats.Abandoned = %d, want 1", got)
	}
	if got := stats.DLQFull.Load(); got != worker.DefaultDeadLetterTries {
		t.Errorf("Stats.DLQFull = %d, want one per try, %d", got, worker.DefaultDeadLetterTries)
	}
	if n := h.count(worker.DLQStream, worker.DLQPrefix+"invite"); n != 0 {
		t.Errorf("%d dead letters stored in a full DLQ", n)
	}
	var tries, abandoned int
	for _, r := range l.all(slog.LevelError) {
		if r.attrs["onboarding_id"] != "full-1" {
			continue
		}
		if !strings.HasPrefix(r.attrs["err"], worker.DLQFullReason+": "+worker.DLQStream+" is at its byte limit") {
			t.Errorf("%q: err %q does not say the stream is full", r.msg, r.attrs["err"])
		}
		switch {
		case strings.Contains(r.msg, "input terminated without one"):
			abandoned++
		case strings.Contains(r.msg, "will be redelivered"):
			tries++
		}
	}
	if abandoned != 1 || tries != worker.DefaultDeadLetterTries-1 {
		t.Errorf("Error logs: %d tries and %d abandonments, want %d and 1: %v", tries, abandoned, worker.DefaultDeadLetterTries-1, l.all(slog.LevelError))
	}

	// The gauges: the stream's bytes and its limit.
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; testutil.ToFloat64(metrics.DLQMaxBytes) != limit || testutil.ToFloat64(metrics.DLQBytes) != float64(info.State.Bytes); i++ {
		if i == 500 {
			t.Fatalf("guestflow_dlq_bytes %v, guestflow_dlq_max_bytes %v; want %d and %d",
				testutil.ToFloat64(metrics.DLQBytes), testutil.ToFloat64(metrics.DLQMaxBytes), info.State.Bytes, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
