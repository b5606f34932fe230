package dlq_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/dlq"
	"github.com/guestflow/guestflow/internal/worker"
)

// republished returns the messages replays put on the GUESTFLOW stream.
func republished(t *testing.T, js jetstream.JetStream) []*jetstream.RawStreamMsg {
	t.Helper()
	s, err := js.Stream(context.Background(), worker.Stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); ; {
		m, err := s.GetMsg(context.Background(), seq, jetstream.WithGetMsgSubject(worker.StreamSubjects))
		if err != nil {
			return out
		}
		out = append(out, m)
		seq = m.Sequence + 1
	}
}

func TestDLQReplayDryRunChangesNothing(t *testing.T) {
	js := newJS(t, true)
	fixture(t, js)
	var out bytes.Buffer
	r, err := dlq.ReplayMatching(t.Context(), js, dlq.ReplayOptions{Filter: dlq.Filter{OnboardingIDs: []string{"ob-3"}}, DryRun: true}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Matched) != 2 || len(r.Done) != 0 {
		t.Errorf("dry run matched %d, replayed %d", len(r.Matched), len(r.Done))
	}
	for _, want := range []string{"WOULD REPUBLISH TO", "3    license  no_license_seats  ob-3        guestflow.user.invited",
		"4    role     unknown_role      ob-3        guestflow.user.licensed", "dry run: 2 dead letters would be replayed; nothing was changed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out.String())
		}
	}
	if got := remaining(t, js); !slices.Equal(got, []uint64{1, 3, 4, 5}) {
		t.Errorf("a dry run changed the DLQ: %v left", got)
	}
	if n := len(republished(t, js)); n != 0 {
		t.Errorf("a dry run published %d messages", n)
	}
}

func TestDLQReplayRepublishesTheMatchesAndRemovesThem(t *testing.T) {
	js := newJS(t, true)
	fixture(t, js)
	var out bytes.Buffer
	var progress []int
	r, err := dlq.ReplayMatching(t.Context(), js, dlq.ReplayOptions{
		Filter:   dlq.Filter{Steps: []string{"license", "role"}},
		Progress: func(done, total int) { progress = append(progress, done, total) },
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Done) != 2 || !strings.Contains(out.String(), "replayed 2 of 2 dead letters") {
		t.Errorf("replayed %d:\n%s", len(r.Done), out.String())
	}
	if !slices.Equal(progress, []int{1, 2, 2, 2}) {
		t.Errorf("progress calls %v", progress)
	}
	if got := remaining(t, js); !slices.Equal(got, []uint64{1, 5}) {
		t.Errorf("left in the DLQ: %v, want 1 and 5", got)
	}
	msgs := republished(t, js)
	if len(msgs) != 2 {
		t.Fatalf("%d messages republished, want 2", len(msgs))
	}
	for i, want := range []string{"guestflow.user.invited", "guestflow.user.licensed"} {
		m := msgs[i]
		if m.Subject != want || m.Header.Get("X-Hr-Batch") != "42" || m.Header.Get(worker.HeaderReason) != "" ||
			!strings.HasPrefix(m.Header.Get("Nats-Msg-Id"), "replay:") {
			t.Errorf("republished #%d: subject %s, headers %v", i, m.Subject, m.Header)
		}
	}
}

func TestDLQReplayGoesOnAfterAFailureAndNamesIt(t *testing.T) {
	js := newJS(t, true)
	put(t, js, letter{step: "license", reason: "no_license_seats", onboarding: "ob-1", failedAt: base})
	put(t, js, letter{step: "license", reason: "no_license_seats", onboarding: "ob-2", failedAt: base, noSubject: true})
	put(t, js, letter{step: "license", reason: "no_license_seats", onboarding: "ob-3", failedAt: base})
	var out bytes.Buffer
	r, err := dlq.ReplayMatching(t.Context(), js, dlq.ReplayOptions{}, &out)
	if err == nil || !strings.Contains(err.Error(), "could not replay 1 of 3 dead letters: 2") {
		t.Errorf("error %v; want dead letter 2 named", err)
	}
	if len(r.Done) != 2 || len(r.Failed) != 1 || r.Failed[0].Letter.Seq != 2 || !errors.Is(r.Failed[0].Err, dlq.ErrNotADeadLetter) {
		t.Errorf("report %+v", r)
	}
	if !strings.Contains(out.String(), "failed: dead letter 2: dlq: not a dead letter") {
		t.Errorf("output:\n%s", out.String())
	}
	if got := remaining(t, js); !slices.Equal(got, []uint64{2}) {
		t.Errorf("left in the DLQ: %v, want only the failed 2", got)
	}
}

func TestDLQReplayKeepsToTheRate(t *testing.T) {
	js := newJS(t, true)
	for range 5 {
		put(t, js, letter{step: "invite", reason: "invalid_event", onboarding: "ob", failedAt: base})
	}
	start := time.Now()
	r, err := dlq.ReplayMatching(t.Context(), js, dlq.ReplayOptions{Rate: 20}, &bytes.Buffer{})
	if err != nil || len(r.Done) != 5 {
		t.Fatalf("replayed %d: %v", len(r.Done), err)
	}
	// A burst of one: the first at once, then one every 50ms.
	if d := time.Since(start); d < 190*time.Millisecond {
		t.Errorf("5 replays at 20/s took %v, want at least 200ms", d)
	}
}

func TestDLQReplayStopsWhenCancelled(t *testing.T) {
	js := newJS(t, true)
	for range 3 {
		put(t, js, letter{step: "invite", reason: "invalid_event", onboarding: "ob", failedAt: base})
	}
	ctx, cancel := context.WithCancel(t.Context())
	r, err := dlq.ReplayMatching(ctx, js, dlq.ReplayOptions{Rate: 1, Progress: func(int, int) { cancel() }}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "stopped (context canceled) before dead letters 2, 3") {
		t.Errorf("error %v", err)
	}
	if len(r.Done) != 1 || len(r.NotTried) != 2 {
		t.Errorf("replayed %d, not tried %d", len(r.Done), len(r.NotTried))
	}
}

func TestDLQReplayOfNothing(t *testing.T) {
	js := newJS(t, true)
	var out bytes.Buffer
	if _, err := dlq.ReplayMatching(t.Context(), js, dlq.ReplayOptions{Filter: dlq.Filter{Reasons: []string{"unknown_sku"}}}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "no dead letters match (reason unknown_sku); nothing to replay") {
		t.Errorf("output: %s", out.String())
	}
}

// TestDLQConcurrentReplaysPublishOnce: two operators replaying the same
// dead letters at once store each of them once.
func TestDLQConcurrentReplaysPublishOnce(t *testing.T) {
	js := newJS(t, true)
	const n = 20
	for range n {
		put(t, js, letter{step: "license", reason: "no_license_seats", onboarding: "ob", failedAt: base})
	}
	var wg sync.WaitGroup
	reports := make([]dlq.Report, 2)
	errs := make([]error, 2)
	for i := range reports {
		wg.Go(func() {
			reports[i], errs[i] = dlq.ReplayMatching(t.Context(), js, dlq.ReplayOptions{}, &bytes.Buffer{})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replay %d: %v", i, err)
		}
	}
	if got := len(republished(t, js)); got != n {
		t.Errorf("%d messages republished for %d dead letters", got, n)
	}
	// A run that lists after the other removed some never sees them, so
	// only the replayed count is fixed: each dead letter by one run.
	if done := len(reports[0].Done) + len(reports[1].Done); done != n {
		t.Errorf("%d replayed, want each of the %d dead letters replayed by one run", done, n)
	}
	if left := remaining(t, js); len(left) != 0 {
		t.Errorf("left in the DLQ: %v", left)
	}
}

func TestDLQConcurrentReplaysOfOneLetter(t *testing.T) {
	js := newJS(t, true)
	seq := put(t, js, letter{step: "license", reason: "no_license_seats", onboarding: "ob-1", failedAt: base})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := dlq.Replay(t.Context(), js, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				t.Errorf("replay: %v", err)
			}
		})
	}
	wg.Wait()
	if got := len(republished(t, js)); got != 1 {
		t.Errorf("%d messages republished, want 1", got)
	}
}

// TestDLQReplayRepeatedAfterTheDeleteFailed stands for a replay killed
// between its publish and its delete: the broker refuses the delete, and
// the operator replays again.
func TestDLQReplayRepeatedAfterTheDeleteFailed(t *testing.T) {
	js := newJS(t, true)
	seq := put(t, js, letter{step: "license", reason: "no_license_seats", onboarding: "ob-1", failedAt: base})
	s, err := js.Stream(t.Context(), worker.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.DenyDelete = true
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := dlq.Replay(t.Context(), js, seq); err == nil || !strings.Contains(err.Error(), "was replayed but not removed") {
			t.Errorf("replay %d: %v, want the failed delete named", i+1, err)
		}
	}
	msgs := republished(t, js)
	if len(msgs) != 1 {
		t.Fatalf("%d messages republished, want 1", len(msgs))
	}
	if id, want := msgs[0].Header.Get(jetstream.MsgIDHeader), fmt.Sprintf("replay:GUESTFLOW_DLQ:%d:", seq); !strings.HasPrefix(id, want) {
		t.Errorf("Nats-Msg-Id %q, want %s<stored>", id, want)
	}
}

// TestDLQReplayOfAReusedSequence: a DLQ stream created again counts from 1
// again, and its first dead letter is not the old one.
func TestDLQReplayOfAReusedSequence(t *testing.T) {
	js := newJS(t, true)
	first := put(t, js, letter{step: "license", reason: "no_license_seats", onboarding: "ob-1", failedAt: base})
	if err := dlq.Replay(t.Context(), js, first); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(t.Context(), worker.DLQStream); err != nil {
		t.Fatal(err)
	}
	if err := worker.EnsureStreams(t.Context(), js, worker.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	second := put(t, js, letter{step: "license", reason: "no_license_seats", onboarding: "ob-2", failedAt: base})
	if second != first {
		t.Fatalf("the new stream's first sequence is %d, not %d", second, first)
	}
	if err := dlq.Replay(t.Context(), js, second); err != nil {
		t.Fatal(err)
	}
	if got := len(republished(t, js)); got != 2 {
		t.Errorf("%d messages republished for two dead letters, want 2", got)
	}
}
