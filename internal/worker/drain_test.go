package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// leaseCounts reads the failures and deaths of the lease on key
// ("invite.<input's sequence>"), for a step to look at while it runs.
func (h *harness) leaseCounts(key string) (failures, deaths string, err error) {
	kv, err := h.js.KeyValue(context.Background(), worker.LeaseBucket)
	if err != nil {
		return "", "", err
	}
	e, err := kv.Get(context.Background(), key)
	if err != nil {
		return "", "", err
	}
	f := strings.Fields(string(e.Value()))
	if len(f) < 3 {
		return "", "", fmt.Errorf("lease %s = %q", key, e.Value())
	}
	return f[1], f[2], nil
}

// consumerInfo is the invite consumer's state.
func (h *harness) consumerInfo() *jetstream.ConsumerInfo {
	h.t.Helper()
	c, err := h.js.Consumer(context.Background(), worker.Stream, "invite")
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return info
}

// hang is a step stuck in a call that ignores its context, until the
// test ends.
func hang(t *testing.T) func() {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	return func() { <-release }
}

func TestStepThatIgnoresItsContextIsAbandonedAtItsTimeout(t *testing.T) {
	h := newHarness(t)
	block := hang(t)
	var calls atomic.Int32
	var first, second atomic.Int64
	var failures, deaths atomic.Value
	var rec logs
	o := fast
	o.StepTimeout = 300 * time.Millisecond
	o.Logger = rec.logger()
	o.Stats = new(worker.Stats)
	h.run(worker.HandlerFunc(func(ctx context.Context, in event.Event) (*event.Event, error) {
		if calls.Add(1) == 1 {
			first.Store(time.Now().UnixNano())
			block()
			return emitInvited(ctx, in)
		}
		second.Store(time.Now().UnixNano())
		f, d, err := h.leaseCounts("invite.1")
		if err != nil {
			return nil, failure.Permanent(failure.InvalidEvent, err)
		}
		failures.Store(f)
		deaths.Store(d)
		return emitInvited(ctx, in)
	}), o)
	h.publishJoined("in-t1")
	m := h.next(worker.Stream, events.SubjectInvited)
	if got := m.Headers().Get(worker.HeaderAttempts); got != "2" {
		t.Errorf("Guestflow-Attempts %q, want 2: the abandoned delivery and the one that finished", got)
	}
	if gap := time.Duration(second.Load() - first.Load()); gap < o.StepTimeout {
		t.Errorf("redelivered %v after the first call, before its %v timeout", gap, o.StepTimeout)
	}
	if f, d := failures.Load(), deaths.Load(); f != "1" || d != "0" {
		t.Errorf("the redelivery's lease counts %v failures and %v deaths, want 1 and 0", f, d)
	}
	if n := o.Stats.StepTimeouts.Load(); n != 1 {
		t.Errorf("Stats.StepTimeouts = %d, want 1", n)
	}
	if info := h.settled(); info.Delivered.Consumer != 2 {
		t.Errorf("delivered %d times, want twice", info.Delivered.Consumer)
	}
	rec.wait(t, "step did not return after its timeout")
	if n := h.count(worker.DLQStream, worker.DLQPrefix+"invite"); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
}

func TestStepTimeoutUsesUpMaxFailures(t *testing.T) {
	h := newHarness(t)
	block := hang(t)
	var calls atomic.Int32
	o := fast
	o.StepTimeout = 300 * time.Millisecond
	o.MaxFailures = 1
	o.Stats = new(worker.Stats)
	h.run(worker.HandlerFunc(func(context.Context, event.Event) (*event.Event, error) {
		calls.Add(1)
		block()
		return nil, nil
	}), o)
	h.publishJoined("in-t2")
	dl := h.next(worker.DLQStream, worker.DLQPrefix+"invite")
	if got := dl.Headers().Get(worker.HeaderReason); got != failure.AttemptsExhausted {
		t.Errorf("reason %q, want %s", got, failure.AttemptsExhausted)
	}
	if got := dl.Headers().Get(worker.HeaderError); !strings.Contains(got, "gave up after 1 failed attempts") ||
		!strings.Contains(got, "step invite did not finish within --step-timeout 300ms") {
		t.Errorf("Guestflow-Error %q does not name the step timeout", got)
	}
	if got := dl.Headers().Get(worker.HeaderAttempts); got != "1" || calls.Load() != 1 {
		t.Errorf("Guestflow-Attempts %q after %d calls, want 1", got, calls.Load())
	}
	if n := o.Stats.StepTimeouts.Load(); n != 1 {
		t.Errorf("Stats.StepTimeouts = %d, want 1", n)
	}
}

func TestStepThatHonoursItsTimeoutIsNotAbandoned(t *testing.T) {
	h := newHarness(t)
	o := fast
	o.StepTimeout = 300 * time.Millisecond
	o.MaxFailures = 1
	o.Stats = new(worker.Stats)
	h.run(worker.HandlerFunc(func(ctx context.Context, _ event.Event) (*event.Event, error) {
		<-ctx.Done()
		return nil, fmt.Errorf("graph: invite: %w", ctx.Err())
	}), o)
	h.publishJoined("in-t3")
	dl := h.next(worker.DLQStream, worker.DLQPrefix+"invite")
	want := "step invite did not finish within --step-timeout 300ms: graph: invite: context deadline exceeded"
	if got := dl.Headers().Get(worker.HeaderError); !strings.Contains(got, want) {
		t.Errorf("Guestflow-Error %q, want it to contain %q", got, want)
	}
	if n := o.Stats.StepTimeouts.Load(); n != 0 {
		t.Errorf("Stats.StepTimeouts = %d: a step that returned when its context ended was counted as abandoned", n)
	}
}

func TestDrainLetsAStepThatFinishesInTimeComplete(t *testing.T) {
	h := newHarness(t)
	var calls atomic.Int32
	started := make(chan struct{}, 1)
	o := fast
	o.DrainTimeout = 10 * time.Second
	stop := h.start(worker.HandlerFunc(func(ctx context.Context, in event.Event) (*event.Event, error) {
		calls.Add(1)
		started <- struct{}{}
		time.Sleep(time.Second) // ignores ctx: it must not be cancelled either
		return emitInvited(ctx, in)
	}), o)
	h.publishJoined("in-d1")
	<-started
	began := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	time.Sleep(100 * time.Millisecond)
	h.publishJoined("in-d2") // after the shutdown began: not pulled
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("Run took %v to stop after its step finished", took)
	}
	m := h.next(worker.Stream, events.SubjectInvited)
	ev, err := events.Decode(m.Subject(), m.Headers(), m.Data())
	if err != nil || events.OnboardingID(ev) != "in-d1" {
		t.Fatalf("invited event %v (%v), want in-d1's", ev, err)
	}
	if n := h.count(worker.Stream, events.SubjectInvited); n != 1 {
		t.Errorf("%d invited events, want 1", n)
	}
	info := h.consumerInfo()
	if info.NumAckPending != 0 || info.NumRedelivered != 0 || info.Delivered.Consumer != 1 || info.NumPending != 1 {
		t.Errorf("consumer after the drain: %d ack pending, %d redelivered, %d delivered, %d pending; want 0, 0, 1 (acked) and in-d2 still pending",
			info.NumAckPending, info.NumRedelivered, info.Delivered.Consumer, info.NumPending)
	}
	if calls.Load() != 1 {
		t.Errorf("%d calls, want 1: the worker pulled after the shutdown began", calls.Load())
	}
}

func TestDrainHandsBackWhatIsStillRunning(t *testing.T) {
	h := newHarness(t)
	block := hang(t)
	started := make(chan struct{}, 2)
	var rec logs
	a := fast
	a.DrainTimeout = 300 * time.Millisecond
	a.Logger = rec.logger()
	stopA := h.start(worker.HandlerFunc(func(ctx context.Context, in event.Event) (*event.Event, error) {
		started <- struct{}{}
		block()
		return emitInvited(ctx, in)
	}), a)
	h.publishJoined("in-d3")
	h.publishJoined("in-d4")
	<-started
	<-started

	// B starts while A holds both: it gets them only when A hands them back.
	var mu sync.Mutex
	counts := map[string]string{}
	h.run(worker.HandlerFunc(func(ctx context.Context, in event.Event) (*event.Event, error) {
		if events.OnboardingID(in) == "in-d3" {
			f, d, err := h.leaseCounts("invite.1")
			mu.Lock()
			counts["failures"], counts["deaths"] = f, d
			if err != nil {
				counts["err"] = err.Error()
			}
			mu.Unlock()
		}
		return emitInvited(ctx, in)
	}), fast)

	began := time.Now()
	if err := stopA(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	stopped := time.Since(began)
	if stopped > 3*time.Second {
		t.Errorf("Run took %v to stop with a 300ms drain timeout", stopped)
	}
	m3 := h.find(worker.Stream, events.SubjectInvited, "in-d3")
	h.find(worker.Stream, events.SubjectInvited, "in-d4")
	// Well before the 30s AckWait: handed back, not left to expire.
	took := time.Since(began)
	if took > 10*time.Second {
		t.Errorf("the second worker finished both inputs %v after the first began to stop", took)
	}
	t.Logf("the first worker stopped after %v; the second had finished both inputs %v after the stop began", stopped, took)
	if got := m3.Headers().Get(worker.HeaderAttempts); got != "2" {
		t.Errorf("Guestflow-Attempts %q, want 2: the delivery handed back and the one that finished", got)
	}
	mu.Lock()
	if counts["failures"] != "0" || counts["deaths"] != "0" {
		t.Errorf("the second worker's lease on in-d3 counts %v: a hand-back is neither a failure nor a death", counts)
	}
	mu.Unlock()
	if info := h.settled(); info.Delivered.Consumer != 4 {
		t.Errorf("delivered %d times, want 4 (each input to each worker)", info.Delivered.Consumer)
	}
	if n := len(rec.all(slog.LevelError)); n != 0 {
		t.Errorf("%d errors logged by the draining worker: %v", n, rec.all(slog.LevelError))
	}
}

// TestAnEventTheBrokerRefusesEndsInADeadLetter: publishing the next event
// failing is a failed attempt bounded by --max-failures like any other,
// not a retry for ever (here the event is over the broker's max_payload,
// which no retry changes).
func TestAnEventTheBrokerRefusesEndsInADeadLetter(t *testing.T) {
	h := newHarness(t)
	o := fast
	o.MaxFailures = 2
	var calls atomic.Int32
	h.run(worker.HandlerFunc(func(_ context.Context, in event.Event) (*event.Event, error) {
		calls.Add(1)
		next, err := events.Next(in, "invite", events.TypeInvited, map[string]string{"pad": strings.Repeat("x", 2<<20)}, time.Now())
		return &next, err
	}), o)
	h.publishJoined("in-big")
	dl := h.next(worker.DLQStream, worker.DLQPrefix+"invite")
	if got := dl.Headers().Get(worker.HeaderReason); got != failure.AttemptsExhausted {
		t.Errorf("reason %q, want %s", got, failure.AttemptsExhausted)
	}
	if got := dl.Headers().Get(worker.HeaderError); !strings.Contains(got, "gave up after 2 failed attempts") || !strings.Contains(got, "publishing the next event") {
		t.Errorf("Guestflow-Error %q does not say the publish failed", got)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("the step ran %d times, want 2", n)
	}
}
