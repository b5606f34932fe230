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
	w.index(ctx, meta.Sequence.Stream, msg.Subject(), msg.Headers(), msg.Data())
	d := delivery{msg: msg, meta: meta}
	ev, err := events.Decode(msg.Subject(), msg.Headers(), msg.Data())
	if err != nil {
		d.onboardingID = clip(events.PeekOnboardingID(msg.Headers(), msg.Data()), MaxHeaderValue)
		w.giveUp(ctx, d, nil, 0, failure.Verdict{Reason: failure.InvalidEvent}, err)
		return
	}
	// Bounded once, here: the id goes into every log line and the dead
	// letter, and the input's publisher chose its length.
	d.onboardingID = clip(events.OnboardingID(ev), MaxHeaderValue)
	log := w.log.With("onboardingid", d.onboardingID, "attempt", meta.NumDelivered)

	ls, ok, err := w.leases.acquire(ctx, w.step.Name+"."+strconv.FormatUint(meta.Sequence.Stream, 10))
	if err != nil {
		log.Warn("lease failed; will retry", "err", err)
		w.nak(d, log, w.o.Backoff(1))
		return
	}
	if !ok {
		log.Info("another delivery of this input is still at work; looking again after AckWait")
		w.nak(d, log, w.ackWait())
		return
	}
	// Lease writes outlive a shutdown: a lease left held would keep the
	// input waiting for its expiry.
	lctx := context.WithoutCancel(ctx)
	log = log.With("failures", ls.failures)
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
		w.fail(ctx, d, ls, log, err)
		return
	}
	if next != nil {
		if err := w.publish(ctx, *next, meta.NumDelivered); err != nil {
			failures := ls.failures + 1
			log.Warn("publishing next event failed; will retry", "err", err)
			w.leases.failed(lctx, ls, failures)
			w.nak(d, log, w.o.Backoff(failures))
			return
		}
	}
	if err := msg.Ack(); err != nil {
		// The next event is stored; a redelivery is deduplicated by its id.
		log.Warn("ack failed", "err", err)
	}
	w.leases.release(lctx, ls)
	log.Debug("done")
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
				w.log.Error("step panicked", "panic", p, "stack", string(debug.Stack()))
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
		w.index(ctx, ack.Sequence, m.Subject, m.Header, m.Data)
	}
	return provision.Denied(w.js.Conn(), err)
}

// fail turns a step error into a redelivery or a dead letter. It counts
// the input's failed attempts in its lease, not the broker's deliveries:
// waiting for Graph's budget is not a failed attempt, so it neither uses
// up MaxFailures nor stretches the backoff; throttling has its own bound,
// ThrottleDeadline.
func (w *runner) fail(ctx context.Context, d delivery, ls *lease, log *slog.Logger, err error) {
	lctx := context.WithoutCancel(ctx)
	v := failure.Classify(err)
	throttled := v.Retryable && v.Reason == failure.Throttled
	if throttled && v.Deadline == 0 {
		v.Deadline = w.o.ThrottleDeadline
	}
	failures := ls.failures
	if !throttled {
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
				delay = w.o.Backoff(max(failures, 1))
			}
			log.Info("step failed; retrying", "reason", v.Reason, "status", v.Status, "delay", delay, "err", clipErr(err))
			// The lease first: a redelivery that came before it would
			// find the lease live and wait a whole AckWait.
			if throttled {
				w.leases.free(lctx, ls)
			} else {
				w.leases.failed(lctx, ls, failures)
			}
			w.nak(d, log, delay)
			return
		}
		if v.Reason == failure.Transient {
			v.Reason = failure.AttemptsExhausted
		}
		err = fmt.Errorf("gave up after %d failed attempts in %s: %w",
			failures, w.o.Now().Sub(d.meta.Timestamp).Round(time.Second), err)
	}
	w.giveUp(ctx, d, ls, failures, v, err)
}

func (w *runner) nak(d delivery, log *slog.Logger, delay time.Duration) {
	if err := d.msg.NakWithDelay(delay); err != nil {
		log.Warn("nak failed; the server redelivers after AckWait", "err", err)
	}
}

// delivery is one received message and what is known about it.
type delivery struct {
	msg          jetstream.Msg
	meta         *jetstream.MsgMetadata
	onboardingID string
}
