package worker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/metrics"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// histogram reads a histogram's sample count and sum.
func histogram(t *testing.T, o prometheus.Observer) (uint64, float64) {
	t.Helper()
	var m dto.Metric
	if err := o.(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// results reads guestflow_step_results_total for the invite step.
func results() map[string]float64 {
	out := map[string]float64{}
	for _, r := range metrics.Results {
		out[r] = testutil.ToFloat64(metrics.StepResults.WithLabelValues("invite", r))
	}
	return out
}

// publishJoinedWith publishes a joined event with extra extensions.
func (h *harness) publishJoinedWith(id string, ext map[string]any) {
	h.t.Helper()
	ev, err := events.NewJoined(id, "test", events.Joined{Email: "a@b.example", GivenName: "A", Surname: "B", UsageLocation: "PT", Instance: "sales"}, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range ext {
		ev.SetExtension(k, v)
	}
	header, body, err := events.Encode(ev)
	if err != nil {
		h.t.Fatal(err)
	}
	h.publishRaw(nats.Header(header), body)
}

// outcome waits for the outcome line msg about onboarding id.
func (l *logs) outcome(t *testing.T, msg, id string) logged {
	t.Helper()
	for i := 0; i < 1500; i++ {
		for _, r := range l.all(slog.LevelDebug) {
			if r.msg == msg && r.attrs["onboarding_id"] == id {
				return r
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %q logged for %s: %v", msg, id, l.all(slog.LevelDebug))
	return logged{}
}

// TestOutcomesAreLoggedAndCounted: every delivery that ends in a result
// logs one line saying which, with the ids an operator searches by and
// what Microsoft answered, and counts it by step and result.
func TestOutcomesAreLoggedAndCounted(t *testing.T) {
	h := newHarness(t)
	var l logs
	o := fast
	o.Logger = l.logger()
	var calls sync.Map // onboarding id → *atomic.Int32
	h.run(worker.HandlerFunc(func(ctx context.Context, in event.Event) (*event.Event, error) {
		n, _ := calls.LoadOrStore(in.ID(), new(atomic.Int32))
		first := n.(*atomic.Int32).Add(1) == 1
		switch {
		case in.ID() == "thr-1" && first:
			return nil, failure.Throttle(errors.New("write budget spent"), 20*time.Millisecond)
		case in.ID() == "rem-1" && first:
			return nil, fmt.Errorf("invite: %w", &failure.Remote{Service: "graph", Op: "invite", Status: 503, RequestID: "req-7"})
		case in.ID() == "perm-1":
			return nil, &failure.Remote{Service: "graph", Op: "invite", Status: 403, RequestID: "req-9", Kind: failure.KindPermission}
		}
		return emitInvited(ctx, in)
	}), o)
	before := results()
	beforeDead := testutil.ToFloat64(metrics.DeadLetters.WithLabelValues("invite", failure.PermissionDenied))
	beforeTimed, _ := histogram(t, metrics.StepDuration.WithLabelValues("invite"))

	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	h.publishJoinedWith("ok-1", map[string]any{events.ExtTraceparent: "00-" + trace + "-00f067aa0ba902b7-01"})
	for _, id := range []string{"thr-1", "rem-1", "perm-1"} {
		h.publishJoined(id)
	}

	done := l.outcome(t, "step done", "ok-1")
	for k, want := range map[string]string{"step": "invite", "event_id": "ok-1", "attempt": "1", "trace_id": trace} {
		if done.attrs[k] != want {
			t.Errorf("step done: %s=%q, want %q (%v)", k, done.attrs[k], want, done.attrs)
		}
	}
	if _, ok := done.attrs["duration_ms"]; !ok || done.level != slog.LevelInfo {
		t.Errorf("step done: level %v, attributes %v; want Info with duration_ms", done.level, done.attrs)
	}

	retried := l.outcome(t, "step retried", "rem-1")
	for k, want := range map[string]string{"reason": failure.GraphError, "service": "graph", "status": "503", "request_id": "req-7", "attempt": "1"} {
		if retried.attrs[k] != want {
			t.Errorf("step retried: %s=%q, want %q (%v)", k, retried.attrs[k], want, retried.attrs)
		}
	}
	if again := l.outcome(t, "step done", "rem-1"); again.attrs["attempt"] != "2" {
		t.Errorf("the redelivery's outcome: attempt %q, want 2", again.attrs["attempt"])
	}

	throttled := l.outcome(t, "step throttled", "thr-1")
	if throttled.attrs["reason"] != failure.Throttled || throttled.level != slog.LevelInfo {
		t.Errorf("step throttled: %v %v", throttled.level, throttled.attrs)
	}
	l.outcome(t, "step done", "thr-1")

	dead := l.outcome(t, "step dead-lettered", "perm-1")
	for k, want := range map[string]string{"reason": failure.PermissionDenied, "service": "graph", "status": "403", "request_id": "req-9"} {
		if dead.attrs[k] != want {
			t.Errorf("step dead-lettered: %s=%q, want %q (%v)", k, dead.attrs[k], want, dead.attrs)
		}
	}
	if dead.level != slog.LevelWarn {
		t.Errorf("step dead-lettered at %v, want Warn", dead.level)
	}
	h.settled()

	got := results()
	for r, want := range map[string]float64{metrics.ResultDone: 3, metrics.ResultRetry: 1, metrics.ResultThrottled: 1, metrics.ResultDeadLetter: 1} {
		if n := got[r] - before[r]; n != want {
			t.Errorf("guestflow_step_results_total{result=%q} grew by %v, want %v", r, n, want)
		}
	}
	if n := testutil.ToFloat64(metrics.DeadLetters.WithLabelValues("invite", failure.PermissionDenied)) - beforeDead; n != 1 {
		t.Errorf("guestflow_dead_letters_total{reason=permission_denied} grew by %v, want 1", n)
	}
	if n, _ := histogram(t, metrics.StepDuration.WithLabelValues("invite")); n-beforeTimed != 6 {
		t.Errorf("guestflow_step_duration_seconds observed %d deliveries, want 6", n-beforeTimed)
	}
	for _, r := range l.all(slog.LevelDebug) {
		if _, ok := r.attrs["onboardingid"]; ok {
			t.Errorf("%q logged the old key onboardingid: %v", r.msg, r.attrs)
		}
	}
}

// TestConsumerPendingIsTheBacklog: the gauge counts the inputs not yet
// delivered and those delivered and not yet finished, and disappears with
// the worker.
func TestConsumerPendingIsTheBacklog(t *testing.T) {
	h := newHarness(t)
	for i := range 3 {
		h.publishJoined(fmt.Sprintf("p-%d", i))
	}
	release := make(chan struct{})
	o := fast
	o.Concurrency = 1
	o.PendingInterval = 20 * time.Millisecond
	stop := h.start(worker.HandlerFunc(func(ctx context.Context, in event.Event) (*event.Event, error) {
		<-release
		return emitInvited(ctx, in)
	}), o)
	gauge := func() float64 { return testutil.ToFloat64(metrics.ConsumerPending.WithLabelValues("invite")) }
	waitFor := func(want float64) {
		t.Helper()
		for i := 0; gauge() != want; i++ {
			if i == 500 {
				t.Fatalf("guestflow_consumer_pending{step=invite} = %v, want %v", gauge(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// One input delivered and held by the step, two waiting.
	waitFor(3)
	close(release)
	h.settled()
	waitFor(0)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(metrics.ConsumerPending); n != 0 {
		t.Errorf("%d pending series left after the worker stopped", n)
	}
}

// TestOnboardingDurationIsObservedOnce: the notify step's runtime observes
// the time from the joined event to the onboarded event it stores, and a
// redelivery that stores nothing new observes nothing.
func TestOnboardingDurationIsObservedOnce(t *testing.T) {
	h := newHarness(t)
	joinedAt := time.Now().Add(-90 * time.Second)
	joined, err := events.NewJoined("ob-1", "test", events.Joined{Email: "a@b.example", GivenName: "A", Surname: "B", UsageLocation: "PT", Instance: "sales"}, joinedAt)
	if err != nil {
		t.Fatal(err)
	}
	in := joined
	for _, typ := range []string{events.TypeInvited, events.TypeLicensed, events.TypeRoleAssigned} {
		if in, err = events.Next(in, "step", typ, map[string]string{"email": "a@b.example"}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() {
		ran <- worker.Run(ctx, h.js, worker.Step{Name: "notify", Subject: events.SubjectRoleAssigned, Handler: worker.HandlerFunc(
			func(_ context.Context, in event.Event) (*event.Event, error) {
				next, err := events.Next(in, "notify", events.TypeOnboarded, map[string]string{"email": "a@b.example"}, time.Now())
				return &next, err
			})}, fast)
	}()
	defer func() { cancel(); <-ran }()

	count, sum := histogram(t, metrics.OnboardingDuration)
	header, body, err := events.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second is a redelivery of the same input
		if _, err := h.js.PublishMsg(context.Background(), &nats.Msg{Subject: events.SubjectRoleAssigned, Header: nats.Header(header), Data: body}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; ; i++ {
		c, err := h.js.Consumer(context.Background(), worker.Stream, "notify")
		if err == nil {
			if info, err := c.Info(context.Background()); err == nil && info.NumAckPending == 0 && info.NumPending == 0 && info.Delivered.Consumer == 2 {
				break
			}
		}
		if i == 1500 {
			t.Fatal("the notify step did not handle both deliveries")
		}
		time.Sleep(10 * time.Millisecond)
	}
	n, s := histogram(t, metrics.OnboardingDuration)
	if n-count != 1 {
		t.Fatalf("observed %d onboardings, want 1", n-count)
	}
	if took := s - sum; math.Abs(took-90) > 10 {
		t.Errorf("onboarding took %.1fs, want the ~90s since the joined event", took)
	}
}

// TestStatsAreExported: each of DefaultStats' counters is a metric.
func TestStatsAreExported(t *testing.T) {
	counters := map[string]*atomic.Uint64{
		"guestflow_worker_dead_letters_abandoned_total": &worker.DefaultStats.Abandoned,
		"guestflow_worker_dead_letters_truncated_total": &worker.DefaultStats.Truncated,
		"guestflow_worker_recreated_total":              &worker.DefaultStats.Recreated,
		"guestflow_worker_index_failures_total":         &worker.DefaultStats.IndexFailures,
		"guestflow_worker_step_timeouts_total":          &worker.DefaultStats.StepTimeouts,
	}
	read := func(name string) float64 {
		t.Helper()
		families, err := prometheus.DefaultGatherer.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() == name && f.GetType() == dto.MetricType_COUNTER && len(f.GetMetric()) == 1 {
				return f.GetMetric()[0].GetCounter().GetValue()
			}
		}
		t.Fatalf("no counter %s on the default registry", name)
		return 0
	}
	for name, c := range counters {
		before := read(name)
		c.Add(2)
		if got := read(name) - before; got != 2 {
			t.Errorf("%s grew by %v after adding 2", name, got)
		}
		if !strings.HasPrefix(name, "guestflow_worker_") {
			t.Errorf("%s is not named guestflow_worker_…", name)
		}
	}
}
