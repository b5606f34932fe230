package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/metrics"
	"github.com/guestflow/guestflow/internal/provision"
	"github.com/guestflow/guestflow/pkg/events"
)

type runner struct {
	js     jetstream.JetStream
	step   Step
	o      Options
	log    *slog.Logger
	leases *leases
	ix     indexer
	// ackWaitNs is the consumer's AckWait (see ensureConsumer), which
	// may differ from o.AckWait.
	ackWaitNs atomic.Int64
	// handBack is closed when the drain's time is up: steps still running
	// then are abandoned and their inputs handed back (see drain).
	handBack chan struct{}
	// inflight counts the deliveries being processed; abandoned counts
	// the steps abandoned after their timeout that have not returned yet.
	inflight, abandoned atomic.Int64
}

// errHandedBack is what call reports for a step that was still running
// when the drain's time was up.
var errHandedBack = errors.New("handed back on shutdown")

// process handles one delivery. Every path ends in exactly one of: ack after
// the next event's PubAck, nak with a delay (none for an input handed back
// on shutdown), or term after the dead letter's PubAck. When even that fails the message is left alone and the server
// redelivers it after AckWait.
func (w *runner) process(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		w.log.Error("not a JetStream message", "err", err)
		return
	}
	d := delivery{msg: msg, meta: meta, start: time.Now()}
	ev, err := events.Decode(msg.Subject(), msg.Headers(), msg.Data())
	switch {
	case filedByPublisher(msg.Headers()):
	case err != nil:
		w.index(ctx, meta.Sequence.Stream, msg.Subject(), msg.Headers(), msg.Data())
	default:
		w.indexEvent(ctx, meta.Sequence.Stream, ev)
	}
	if err != nil {
		d.onboardingID = clip(events.PeekOnboardingID(msg.Headers(), msg.Data()), MaxHeaderValue)
		d.log = w.log.With("onboarding_id", d.onboardingID, "event_id", clip(events.PeekID(msg.Headers(), msg.Data()), MaxHeaderValue),
			"attempt", meta.NumDelivered)
		w.giveUp(ctx, d, nil, 0, failure.Verdict{Reason: failure.InvalidEvent}, err)
		return
	}
	// Bounded once, here: the ids go into every log line and the dead
	// letter, and the input's publisher chose their length. The trace id
	// is the one the onboarding's spans are recorded under.
	d.onboardingID = clip(events.OnboardingID(ev), MaxHeaderValue)
	d.log = w.log.With("onboarding_id", d.onboardingID, "event_id", clip(ev.ID(), MaxHeaderValue),
		"attempt", meta.NumDelivered, "trace_id", events.TraceID(ev))
	log := d.log

	ls, ok, err := w.leases.acquire(ctx, w.step.Name+"."+strconv.FormatUint(meta.Sequence.Stream, 10))
	if err != nil {
		w.outcome(d, slog.LevelWarn, metrics.ResultRetry, "step retried", "reason", failure.Transient, "err", fmt.Errorf("lease: %w", err))
		w.nak(d, w.o.Backoff(1))
		return
	}
	if !ok {
		// Not an outcome: the delivery at work will have one.
		log.Info("another delivery of this input is still at work; looking again after AckWait")
		w.nak(d, w.ackWait())
		return
	}
	// Lease writes outlive a shutdown: a lease left held would keep the
	// input waiting for its expiry.
	lctx := context.WithoutCancel(ctx)
	d.log = log.With("failures", ls.failures)
	log = d.log
	if ls.deaths >= w.o.MaxFailures {
		// Its workers died during every attempt (killed for memory, a
		// crash in a dependency): another try would likely kill this one.
		err := fmt.Errorf("gave up after %d attempts during which the worker stopped without an answer; look for crashes or out-of-memory kills in the worker logs", ls.deaths)
		w.giveUp(ctx, d, ls, ls.failures, failure.Verdict{Reason: failure.AttemptsExhausted}, err)
		return
	}

	next, err := w.call(ctx, msg, ev, ls, log)
	if errors.Is(err, errHandedBack) {
		// Neither a failed attempt nor a death: the worker is stopping,
		// the input did not fail. The lease first, as in fail.
		w.leases.free(lctx, ls)
		if err := msg.Nak(); err != nil {
			log.Warn("handing the input back failed; the server redelivers it after AckWait", "err", err)
			return
		}
		log.Info("handed the input back: its step was still running at --drain-timeout")
		return
	}
	if err != nil {
		w.fail(ctx, d, ls, err)
		return
	}
	if next != nil {
		if err := w.publish(ctx, *next, meta.NumDelivered); err != nil {
			// A failed attempt like any other, bounded by MaxFailures: a
			// broker that keeps refusing the event (one over its
			// max_payload, a stream gone read-only) must end in a dead
			// letter, not in retries for ever.
			w.fail(ctx, d, ls, fmt.Errorf("publishing the next event: %w", err))
			return
		}
	}
	if err := msg.Ack(); err != nil {
		// The next event is stored; a redelivery is deduplicated by its id.
		log.Warn("ack failed", "err", err)
	}
	w.leases.release(lctx, ls)
	w.outcome(d, slog.LevelInfo, metrics.ResultDone, "step done")
}

// outcome counts how a delivery ended in guestflow_step_results_total and
// guestflow_step_duration_seconds, and logs it: one line per delivery that
// ended in a result, on the delivery's logger, with how long it took.
func (w *runner) outcome(d delivery, level slog.Level, result, msg string, args ...any) {
	took := time.Since(d.start)
	metrics.StepResults.WithLabelValues(w.step.Name, result).Inc()
	metrics.StepDuration.WithLabelValues(w.step.Name).Observe(took.Seconds())
	d.log.Log(context.Background(), level, msg, append(args, "duration_ms", took.Milliseconds())...)
}

// remoteAttrs are the log attributes of a failed call to Microsoft in err's
// chain: which service, its status and request id, for a support case.
func remoteAttrs(err error) []any {
	var r *failure.Remote
	if !errors.As(err, &r) {
		return nil
	}
	attrs := []any{"service", r.Service}
	if r.Status != 0 {
		attrs = append(attrs, "status", r.Status)
	}
	if r.RequestID != "" {
		attrs = append(attrs, "request_id", clip(r.RequestID, MaxHeaderValue))
	}
	return attrs
}

// abandonGrace is how long a step whose context has ended (its timeout)
// gets to return before it is abandoned. A step that honours its context
// returns within it, with an error that says which call it was in, and is
// not counted among the abandoned.
const abandonGrace = time.Second

// call runs the step with a timeout, telling the server (and the lease) it
// is still at work so that a slow Graph call does not cause a parallel
// redelivery.
//
// A step that has not returned abandonGrace after its timeout, or when
// the drain's time is up, is abandoned: call returns without it, and its
// goroutine may go on running (a call that ignores its context cannot be
// stopped from outside). Nothing it does then reaches the input: the step
// never sees the message, and what it returns late goes into a channel
// nobody reads, so only the runtime acks, publishes for or naks it. Its
// context is cancelled when call returns, and the lease is given up with
// the failure, so a redelivery may run beside the abandoned goroutine:
// steps check before they act for this reason too (as after a broker
// restart). Each abandonment is counted in Stats.StepTimeouts.
func (w *runner) call(ctx context.Context, msg jetstream.Msg, ev event.Event, ls *lease, log *slog.Logger) (*event.Event, error) {
	select {
	case <-w.handBack:
		return nil, errHandedBack
	default:
	}
	timeout := fmt.Errorf("step %s did not finish within --step-timeout %s", w.step.Name, w.o.StepTimeout)
	sctx, cancel := context.WithTimeoutCause(ctx, w.o.StepTimeout, timeout)
	defer cancel()
	tick := time.NewTicker(w.ackWait() / 3)
	defer tick.Stop()
	type result struct {
		next *event.Event
		err  error
	}
	done := make(chan result, 1)
	// state is 0 while the step runs, 1 once it returned, 2 once call
	// abandoned it: whichever comes first.
	var state atomic.Int32
	go func() {
		defer func() {
			if !state.CompareAndSwap(0, 1) {
				w.abandoned.Add(-1)
				log.Warn("an abandoned step returned at last")
			}
		}()
		// A panicking step is a failed attempt, not a dead worker: the
		// other inputs in flight go on, and this one is retried and then
		// dead-lettered with the panic as its error.
		defer func() {
			if p := recover(); p != nil {
				log.Error("step panicked", "panic", p, "stack", string(debug.Stack()))
				done <- result{nil, fmt.Errorf("step %s panicked: %v", w.step.Name, p)}
			}
		}()
		next, err := w.step.Handler.Handle(sctx, ev)
		done <- result{next, err}
	}()
	abandon := func() bool {
		if !state.CompareAndSwap(0, 2) {
			return false // it has just returned: its result is in done
		}
		w.abandoned.Add(1)
		return true
	}
	expired := sctx.Done()
	var grace <-chan time.Time
	graceTimer := time.NewTimer(abandonGrace)
	graceTimer.Stop()
	defer graceTimer.Stop()
	for {
		select {
		case r := <-done:
			if r.err != nil && context.Cause(sctx) == timeout && !errors.Is(r.err, timeout) {
				r.err = fmt.Errorf("%w: %w", timeout, r.err)
			}
			return r.next, r.err
		case <-expired:
			expired = nil
			graceTimer.Reset(abandonGrace)
			grace = graceTimer.C
		case <-grace:
			grace = nil
			if abandon() {
				w.o.Stats.StepTimeouts.Add(1)
				log.Error("step did not return after its timeout; abandoned it, and it may still be running: look for a call that ignores its context",
					"step_timeout", w.o.StepTimeout, "abandoned_running", w.abandoned.Load())
				return nil, fmt.Errorf("%w; abandoned %s later without an answer (a call that ignores its context?)", timeout, abandonGrace)
			}
		case <-w.handBack:
			if abandon() {
				return nil, errHandedBack
			}
		case <-tick.C:
			_ = msg.InProgress()
			w.leases.renew(ctx, ls)
		}
	}
}

// publish stores ev on its subject with Nats-Msg-Id = ev.ID() and waits for
// the PubAck, so a retried publish of the same event is deduplicated. The
// Guestflow-Attempts header says how many deliveries of the input the step
// needed, for `guestflow status`.
func (w *runner) publish(ctx context.Context, ev event.Event, attempts uint64) error {
	subject, ok := events.Subject(ev.Type())
	if !ok {
		return fmt.Errorf("step %s produced unknown event type %q", w.step.Name, ev.Type())
	}
	header, body, err := events.Encode(ev)
	if err != nil {
		return err
	}
	m := &nats.Msg{Subject: subject, Header: nats.Header(header), Data: body}
	m.Header.Set(HeaderAttempts, strconv.FormatUint(attempts, 10))
	opts := []jetstream.PublishOpt{jetstream.WithMsgID(ev.ID()), jetstream.WithExpectStream(Stream)}
	ack, err := w.js.PublishMsg(ctx, m, opts...)
	if missing(err) {
		// No stream stored it; publishing again under the same id cannot
		// store it twice.
		if rerr := w.restore(ctx, Stream); rerr != nil {
			return errors.Join(err, rerr)
		}
		ack, err = w.js.PublishMsg(ctx, m, opts...)
	}
	if err == nil {
		w.indexEvent(ctx, ack.Sequence, ev)
		if !ack.Duplicate {
			w.onboarded(ev)
		}
	}
	return provision.Denied(w.js.Conn(), err)
}

// fail turns a step error into a redelivery or a dead letter. It counts
// the input's failed attempts in its lease, not the broker's deliveries:
// waiting for Graph's budget is not a failed attempt, so it neither uses
// up MaxFailures nor stretches the backoff; throttling has its own bound,
// ThrottleDeadline.
//
// A step's wait for something outside guestflow to happen (the Dataverse
// sync, directory replication: a retry bounded by a deadline) is not a
// failed attempt either. Its backoff grows with the input's deliveries
// instead, so that a sync of minutes is looked at less and less often; and
// its lease is released as a throttled one is, so that the next delivery
// takes it with one create rather than a failed create, a read and an
// update.
func (w *runner) fail(ctx context.Context, d delivery, ls *lease, err error) {
	lctx := context.WithoutCancel(ctx)
	v := failure.Classify(err)
	throttled := v.Retryable && v.Reason == failure.Throttled
	if throttled && v.Deadline == 0 {
		v.Deadline = w.o.ThrottleDeadline
	}
	waiting := v.Retryable && !throttled && v.Deadline > 0
	failures := ls.failures
	if !throttled && !waiting {
		failures++
	}
	if v.Retryable {
		exhausted := failures >= w.o.MaxFailures
		if v.Deadline > 0 {
			exhausted = w.o.Now().Sub(d.meta.Timestamp) >= v.Deadline
		}
		if !exhausted {
			delay := v.After
			if delay <= 0 {
				n := failures
				if waiting {
					// Capped only to bound Backoff's loop: the delay
					// reaches its maximum within a dozen doublings.
					n = int(min(d.meta.NumDelivered, 64))
				}
				delay = w.o.Backoff(max(n, 1))
			}
			result, msg := metrics.ResultRetry, "step retried"
			if throttled {
				result, msg = metrics.ResultThrottled, "step throttled"
			}
			w.outcome(d, slog.LevelInfo, result, msg, append([]any{"reason", v.Reason, "delay", delay, "err", clipErr(err)}, remoteAttrs(err)...)...)
			// The lease first: a redelivery that came before it would
			// find the lease live and wait a whole AckWait.
			if throttled || waiting {
				w.leases.free(lctx, ls)
			} else {
				w.leases.failed(lctx, ls, failures)
			}
			w.nak(d, delay)
			return
		}
		if v.Reason == failure.Transient {
			v.Reason = failure.AttemptsExhausted
		}
		elapsed := w.o.Now().Sub(d.meta.Timestamp).Round(time.Second)
		if waiting {
			err = fmt.Errorf("gave up after waiting %s (%d deliveries): %w", elapsed, d.meta.NumDelivered, err)
		} else {
			err = fmt.Errorf("gave up after %d failed attempts in %s: %w", failures, elapsed, err)
		}
	}
	w.giveUp(ctx, d, ls, failures, v, err)
}

func (w *runner) nak(d delivery, delay time.Duration) {
	if err := d.msg.NakWithDelay(delay); err != nil {
		d.log.Warn("nak failed; the server redelivers after AckWait", "err", err)
	}
}

// delivery is one received message and what is known about it.
type delivery struct {
	msg          jetstream.Msg
	meta         *jetstream.MsgMetadata
	onboardingID string
	// log is the runner's logger with the delivery's onboarding_id,
	// event_id, attempt and trace_id; start is when it was received.
	log   *slog.Logger
	start time.Time
}
