package dlq_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
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
