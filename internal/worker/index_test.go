package worker_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/index"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// TestTheRuntimeIndexesItsInputAndWhatItPublishes: the joined event came
// straight from an HR system, the invited event from the step.
func TestTheRuntimeIndexesItsInputAndWhatItPublishes(t *testing.T) {
	h := newHarness(t)
	h.run(worker.HandlerFunc(emitInvited), fast)
	h.publishJoined("ix-1")
	invited, r := invitedAndIndexed(t, h)
	for _, query := range []string{"ix-1", "A@B.example"} {
		seqs, found, err := r.Lookup(t.Context(), query)
		slices.Sort(seqs)
		if err != nil || !found || !slices.Equal(seqs, []uint64{1, invited}) {
			t.Errorf("%s: %v %v %v, want the joined event (1) and the invited one (%d)", query, seqs, found, err, invited)
		}
	}
}

// invitedAndIndexed waits for the invited event the step publishes and
// for the runtime to settle, and returns the event's stream sequence and
// a reader of the index.
func invitedAndIndexed(t *testing.T, h *harness) (uint64, *index.Reader) {
	t.Helper()
	meta, err := h.next(worker.Stream, events.SubjectInvited).Metadata()
	if err != nil {
		t.Fatal(err)
	}
	h.settled()
	r, err := index.OpenReader(t.Context(), h.js)
	if err != nil {
		t.Fatal(err)
	}
	return meta.Sequence.Stream, r
}

// TestAnIndexFailureDoesNotHoldTheOnboarding puts a stream where the
// bucket should be, with settings the bucket cannot take: every index
// write fails, and the input is handled all the same.
func TestAnIndexFailureDoesNotHoldTheOnboarding(t *testing.T) {
	h := newHarness(t)
	if _, err := h.js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: "KV_" + index.Bucket, Subjects: []string{"$KV." + index.Bucket + ".>"}, Storage: jetstream.MemoryStorage,
	}); err != nil {
		t.Fatal(err)
	}
	l := &logs{}
	o := fast
	o.Logger = l.logger()
	o.Stats = new(worker.Stats)
	h.run(worker.HandlerFunc(emitInvited), o)
	began := time.Now()
	h.publishJoined("ix-2")
	h.next(worker.Stream, events.SubjectInvited)
	h.settled()
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("the onboarding took %v", took)
	}
	if n := o.Stats.IndexFailures.Load(); n != 2 {
		t.Errorf("IndexFailures %d, want 2 (the input and the published event)", n)
	}
	l.wait(t, "indexing a message for guestflow status failed")
}

// TestAStepsEventIsFiledByItsPublisherOnly: an input that a step
// published (it carries Guestflow-Attempts) was filed by that step; its
// receiver does not file it again, and still files what it publishes.
func TestAStepsEventIsFiledByItsPublisherOnly(t *testing.T) {
	h := newHarness(t)
	h.run(worker.HandlerFunc(emitInvited), fast)
	header, body := h.joined("ix-3")
	header.Set(worker.HeaderAttempts, "1")
	h.publishRaw(header, body)
	invited, r := invitedAndIndexed(t, h)
	seqs, found, err := r.Lookup(t.Context(), "ix-3")
	if err != nil || !found || !slices.Equal(seqs, []uint64{invited}) {
		t.Errorf("ix-3: %v %v %v, want only the invited event (%d): the input's publisher filed it, not its receiver", seqs, found, err, invited)
	}
}
