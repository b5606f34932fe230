package worker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/broker/brokertest"
	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// harness runs one step on an embedded JetStream.
type harness struct {
	t  *testing.T
	js jetstream.JetStream
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	js := brokertest.JetStream(t, brokertest.URL(t))
	if err := worker.EnsureStreams(context.Background(), js, worker.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, js: js}
}

// run starts the invite-shaped step h until the test ends.
func (h *harness) run(handler worker.Handler, o worker.Options) {
	stop := h.start(handler, o)
	h.t.Cleanup(func() {
		if err := stop(); err != nil {
			h.t.Errorf("Run: %v", err)
		}
	})
}

// start runs the invite-shaped step until stop, which cancels Run's
// context and returns what Run returned (the test's end stops it too). It
// returns once the consumer exists.
func (h *harness) start(handler worker.Handler, o worker.Options) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- worker.Run(ctx, h.js, worker.Step{Name: "invite", Subject: events.SubjectJoined, Handler: handler}, o)
	}()
	var err error
	var once sync.Once
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	h.t.Cleanup(func() { _ = stop() })
	// Publish only once the consumer exists, so tests measure delivery,
	// not start-up.
	for i := 0; ; i++ {
		if _, err := h.js.Consumer(ctx, worker.Stream, "invite"); err == nil {
			return stop
		}
		if i == 500 {
			h.t.Fatal("the worker did not create its consumer")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) publishJoined(id string) {
	h.t.Helper()
	h.publishRaw(h.joined(id))
}

// joined encodes the joined event publishJoined publishes.
func (h *harness) joined(id string) (nats.Header, []byte) {
	h.t.Helper()
	ev, err := events.NewJoined(id, "test", events.Joined{Email: "a@b.example", GivenName: "A", Surname: "B", UsageLocation: "PT", Instance: "sales"}, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	header, body, err := events.Encode(ev)
	if err != nil {
		h.t.Fatal(err)
	}
	return nats.Header(header), body
}

func (h *harness) publishRaw(header nats.Header, body []byte) {
	h.t.Helper()
	// On a cluster, a stream just created may have no responder on the
	// server the test is connected to for a moment ("no response from
	// stream"); retry for up to 10 s, as a publisher would.
	msg := &nats.Msg{Subject: events.SubjectJoined, Header: header, Data: body}
	if _, err := h.js.PublishMsg(context.Background(), msg, jetstream.WithRetryAttempts(40)); err != nil {
		h.t.Fatal(err)
	}
}

// next waits for one message on subject.
func (h *harness) next(stream, subject string) jetstream.Msg {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := h.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		h.t.Fatal(err)
	}
	m, err := c.Next(jetstream.FetchContext(ctx))
	if err != nil {
		h.t.Fatalf("no message on %s: %v", subject, err)
	}
	return m
}

// count returns how many messages stream holds on subject.
func (h *harness) count(stream, subject string) uint64 {
	h.t.Helper()
	s, err := h.js.Stream(context.Background(), stream)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		h.t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// settled waits until the consumer has nothing pending or unacked.
func (h *harness) settled() *jetstream.ConsumerInfo {
	h.t.Helper()
	// Generous: a cluster's consumer on a loaded machine (tests of other
	// packages run beside these) takes seconds to answer.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := h.js.Consumer(context.Background(), worker.Stream, "invite")
		if err == nil {
			info, err := c.Info(context.Background())
			if err == nil && info.NumAckPending == 0 && info.NumPending == 0 && info.Delivered.Consumer > 0 {
				return info
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatal("consumer did not settle")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func emitInvited(_ context.Context, in event.Event) (*event.Event, error) {
	next, err := events.Next(in, "invite", events.TypeInvited, map[string]string{"email": "a@b.example"}, time.Now())
	return &next, err
}

var fast = worker.Options{
	Backoff: func(int) time.Duration { return 10 * time.Millisecond },
	Logger:  slog.New(slog.DiscardHandler),
}

func TestSuccessPublishesNextThenAcks(t *testing.T) {
	h := newHarness(t)
	h.run(worker.HandlerFunc(emitInvited), fast)
	h.publishJoined("in-1")
	m := h.next(worker.Stream, events.SubjectInvited)
	ev, err := events.Decode(m.Subject(), m.Headers(), m.Data())
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Headers().Get(nats.MsgIdHdr); got != ev.ID() {
		t.Errorf("Nats-Msg-Id %q, want the event id %q", got, ev.ID())
	}
	if got := m.Headers().Get(worker.HeaderAttempts); got != "1" {
		t.Errorf("Guestflow-Attempts %q, want 1", got)
	}
	if events.OnboardingID(ev) != "in-1" || ev.Source() != "guestflow/invite" {
		t.Errorf("next event: onboardingid %q source %q", events.OnboardingID(ev), ev.Source())
	}
	if info := h.settled(); info.Delivered.Consumer != 1 {
		t.Errorf("delivered %d times, want once", info.Delivered.Consumer)
	}
}

func TestRetryableFailureIsRedeliveredThenSucceeds(t *testing.T) {
	h := newHarness(t)
	var calls atomic.Int32
	h.run(worker.HandlerFunc(func(ctx context.Context, in event.Event) (*event.Event, error) {
		if calls.Add(1) < 3 {
			return nil, &failure.Remote{Service: "graph", Op: "invite", Status: 503}
		}
		return emitInvited(ctx, in)
	}), fast)
	h.publishJoined("in-2")
	h.next(worker.Stream, events.SubjectInvited)
	h.settled()
	if calls.Load() != 3 {
		t.Errorf("step called %d times, want 3", calls.Load())
	}
	if n := h.count(worker.DLQStream, worker.DLQPrefix+"invite"); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	h := newHarness(t)
	var first, second atomic.Int64
	h.run(worker.HandlerFunc(func(ctx context.Context, in event.Event) (*event.Event, error) {
		now := time.Now().UnixNano()
		if first.CompareAndSwap(0, now) {
			return nil, &failure.Remote{Service: "graph", Op: "invite", Status: 429, RetryAfter: time.Second}
		}
		second.CompareAndSwap(0, now)
		return emitInvited(ctx, in)
	}), fast)
	h.publishJoined("in-3")
	h.next(worker.Stream, events.SubjectInvited)
	if gap := time.Duration(second.Load() - first.Load()); gap < time.Second {
		t.Errorf("redelivered after %v, before the 1s Retry-After (the backoff alone would be 10ms)", gap)
	}
}

func TestPermanentFailureIsDeadLettered(t *testing.T) {
	h := newHarness(t)
	h.run(worker.HandlerFunc(func(context.Context, event.Event) (*event.Event, error) {
		return nil, failure.Permanent(failure.UnknownInstance, errors.New(`instance "nope" is not configured`))
	}), fast)
	h.publishJoined("in-4")
	dl := h.next(worker.DLQStream, worker.DLQPrefix+"invite")
	want := map[string]string{
		worker.HeaderStep: "invite", worker.HeaderReason: "unknown_instance", worker.HeaderAttempts: "1",
		worker.HeaderOriginalSubject: events.SubjectJoined, worker.HeaderOnboardingID: "in-4",
		worker.HeaderError: `instance "nope" is not configured`,
	}
	for k, v := range want {
		if got := dl.Headers().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if _, err := time.Parse(time.RFC3339, dl.Headers().Get(worker.HeaderFailedAt)); err != nil {
		t.Errorf("Guestflow-Failed-At: %v", err)
	}
	meta, _ := dl.Metadata()
	if got := dl.Headers().Get(nats.MsgIdHdr); got != "dlq:invite:1" {
		t.Errorf("dead letter Nats-Msg-Id %q, want dlq:invite:1 (meta %+v)", got, meta)
	}
	if info := h.settled(); info.Delivered.Consumer != 1 {
		t.Errorf("delivered %d times, want once", info.Delivered.Consumer)
	}
}

func TestInvalidEventIsDeadLetteredOnFirstDelivery(t *testing.T) {
	h := newHarness(t)
	var calls atomic.Int32
	h.run(worker.HandlerFunc(func(context.Context, event.Event) (*event.Event, error) {
		calls.Add(1)
		return nil, nil
	}), fast)
	body := []byte(`{"specversion":"1.0","id":"broken-1","source":"hr","type":"io.guestflow.user.invited.v1","data":{}}`)
	h.publishRaw(nats.Header{"X-Trace": {"kept"}}, body)
	dl := h.next(worker.DLQStream, worker.DLQPrefix+"invite")
	if dl.Headers().Get(worker.HeaderReason) != failure.InvalidEvent || dl.Headers().Get(worker.HeaderOnboardingID) != "broken-1" {
		t.Errorf("headers %v", dl.Headers())
	}
	if dl.Headers().Get("X-Trace") != "kept" || string(dl.Data()) != string(body) {
		t.Errorf("dead letter must keep the body and the original headers: %v %s", dl.Headers(), dl.Data())
	}
	h.settled()
	if calls.Load() != 0 {
		t.Errorf("the step saw an invalid event")
	}
}

func TestAttemptsExhaustedIsDeadLettered(t *testing.T) {
	h := newHarness(t)
	var calls atomic.Int32
	o := fast
	o.MaxFailures = 3
	h.run(worker.HandlerFunc(func(context.Context, event.Event) (*event.Event, error) {
		calls.Add(1)
		return nil, errors.New("connection reset by peer")
	}), o)
	h.publishJoined("in-6")
	dl := h.next(worker.DLQStream, worker.DLQPrefix+"invite")
	if got := dl.Headers().Get(worker.HeaderReason); got != failure.AttemptsExhausted {
		t.Errorf("reason %q", got)
	}
	if got := dl.Headers().Get(worker.HeaderAttempts); got != "3" || calls.Load() != 3 {
		t.Errorf("attempts header %q, calls %d, want 3", got, calls.Load())
	}
}

func TestDeadlineReplacesAttemptLimit(t *testing.T) {
	h := newHarness(t)
	var calls atomic.Int32
	o := fast
	o.MaxFailures = 2
	h.run(worker.HandlerFunc(func(context.Context, event.Event) (*event.Event, error) {
		calls.Add(1)
		return nil, failure.Retry(failure.UserNotSynced, errors.New("not synced"), time.Second)
	}), o)
	h.publishJoined("in-7")
	dl := h.next(worker.DLQStream, worker.DLQPrefix+"invite")
	if got := dl.Headers().Get(worker.HeaderReason); got != failure.UserNotSynced {
		t.Errorf("reason %q", got)
	}
	if calls.Load() <= 2 {
		t.Errorf("only %d attempts: the deadline, not MaxFailures, must bound a sync wait", calls.Load())
	}
}

// TestWaitsDoNotUseUpAttempts: a wait bounded by its deadline (the
// Dataverse sync) is not a failed attempt: the failures after it still get
// every attempt MaxFailures allows.
func TestWaitsDoNotUseUpAttempts(t *testing.T) {
	h := newHarness(t)
	var calls atomic.Int32
	o := fast
	o.MaxFailures = 2
	h.run(worker.HandlerFunc(func(ctx context.Context, in event.Event) (*event.Event, error) {
		switch n := calls.Add(1); {
		case n <= 3:
			return nil, failure.Retry(failure.UserNotSynced, errors.New("not synced"), time.Minute)
		case n == 4:
			return nil, errors.New("connection reset by peer")
		}
		return emitInvited(ctx, in)
	}), o)
	h.publishJoined("in-wait")
	h.next(worker.Stream, events.SubjectInvited)
	if n := h.count(worker.DLQStream, worker.DLQPrefix+"invite"); n != 0 || calls.Load() != 5 {
		t.Errorf("%d dead letters after %d calls: three waits and one failure must leave an attempt", n, calls.Load())
	}
}

func TestThrottlingDoesNotUseUpAttempts(t *testing.T) {
	h := newHarness(t)
	var calls atomic.Int32
	o := fast
	o.MaxFailures = 2
	h.run(worker.HandlerFunc(func(ctx context.Context, in event.Event) (*event.Event, error) {
		if calls.Add(1) <= 4 {
			return nil, failure.Throttle(errors.New("write budget spent"), 20*time.Millisecond)
		}
		return emitInvited(ctx, in)
	}), o)
	h.publishJoined("in-8")
	h.next(worker.Stream, events.SubjectInvited)
	if n := h.count(worker.DLQStream, worker.DLQPrefix+"invite"); n != 0 || calls.Load() != 5 {
		t.Errorf("%d dead letters after %d calls: waiting for budget must not count as failed attempts", n, calls.Load())
	}
}

func TestFailuresAfterThrottlingGetTheirFullAttempts(t *testing.T) {
	h := newHarness(t)
	var calls atomic.Int32
	o := fast
	o.MaxFailures = 2
	h.run(worker.HandlerFunc(func(ctx context.Context, in event.Event) (*event.Event, error) {
		if calls.Add(1) <= 4 {
			return nil, failure.Throttle(errors.New("write budget spent"), 20*time.Millisecond)
		}
		return nil, errors.New("connection reset by peer")
	}), o)
	h.publishJoined("in-9")
	dl := h.next(worker.DLQStream, worker.DLQPrefix+"invite")
	if got := dl.Headers().Get(worker.HeaderReason); got != failure.AttemptsExhausted {
		t.Errorf("reason %q", got)
	}
	// Four waits for budget, then the two failed attempts MaxFailures allows.
	if calls.Load() != 6 {
		t.Errorf("dead-lettered after %d calls, want 4 throttled + 2 failed", calls.Load())
	}
	if got := dl.Headers().Get(worker.HeaderAttempts); got != "6" {
		t.Errorf("Guestflow-Attempts %q, want the 6 deliveries used", got)
	}
	if got := dl.Headers().Get(worker.HeaderError); !strings.Contains(got, "after 2 failed attempts") {
		t.Errorf("Guestflow-Error %q does not say how many attempts failed", got)
	}
}

func TestPanicIsAFailedAttempt(t *testing.T) {
	h := newHarness(t)
	var calls atomic.Int32
	o := fast
	o.MaxFailures = 2
	h.run(worker.HandlerFunc(func(ctx context.Context, in event.Event) (*event.Event, error) {
		if events.OnboardingID(in) == "in-10" {
			calls.Add(1)
			var m map[string]int
			m["boom"]++ // a bug in a step
		}
		return emitInvited(ctx, in)
	}), o)
	h.publishJoined("in-10")
	dl := h.next(worker.DLQStream, worker.DLQPrefix+"invite")
	if got := dl.Headers().Get(worker.HeaderError); !strings.Contains(got, "step invite panicked: assignment to entry in nil map") {
		t.Errorf("Guestflow-Error %q does not carry the panic", got)
	}
	if calls.Load() != 2 {
		t.Errorf("%d calls, want the 2 attempts", calls.Load())
	}
	// The worker survived: the next input goes through.
	h.publishJoined("in-11")
	m := h.next(worker.Stream, events.SubjectInvited)
	ev, err := events.Decode(m.Subject(), m.Headers(), m.Data())
	if err != nil || events.OnboardingID(ev) != "in-11" {
		t.Errorf("first invited event %v (%v), want in-11's", events.OnboardingID(ev), err)
	}
}

func TestInputWhoseWorkersKeepDyingIsDeadLettered(t *testing.T) {
	h := newHarness(t)
	var calls atomic.Int32
	o := fast
	o.MaxFailures = 3
	// The lease of input 1 as the third worker to die on it left it: held,
	// expired, two failures recorded before, both deaths.
	kv, err := h.js.CreateOrUpdateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: worker.LeaseBucket, Storage: jetstream.FileStorage, TTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), "invite.1", []byte(fmt.Sprintf("%d 2 2", time.Now().Add(-time.Minute).UnixNano()))); err != nil {
		t.Fatal(err)
	}
	h.run(worker.HandlerFunc(func(ctx context.Context, in event.Event) (*event.Event, error) {
		calls.Add(1)
		return emitInvited(ctx, in)
	}), o)
	h.publishJoined("in-12")
	dl := h.next(worker.DLQStream, worker.DLQPrefix+"invite")
	if got := dl.Headers().Get(worker.HeaderReason); got != failure.AttemptsExhausted {
		t.Errorf("reason %q", got)
	}
	if got := dl.Headers().Get(worker.HeaderError); !strings.Contains(got, "gave up after 3 attempts during which the worker stopped") {
		t.Errorf("Guestflow-Error %q", got)
	}
	if calls.Load() != 0 {
		t.Errorf("the step ran %d times on an input that kills its workers", calls.Load())
	}
}
