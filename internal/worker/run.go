package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/metrics"
	"github.com/guestflow/guestflow/internal/provision"
)

// Options tune the runtime. The zero value is usable: SetDefaults fills in
// the defaults.
//
// "Attempts" are deliveries of an input to the step, everywhere: the
// Guestflow-Attempts header, `guestflow status` and `dlq list` count them.
// A failed attempt is a delivery whose step failed; only those count
// against MaxFailures.
type Options struct {
	// AckWait is how long the server waits for an ack before redelivering;
	// long steps extend it with in-progress acks.
	AckWait time.Duration
	// MaxFailures is how many failed attempts a retryable failure gets
	// before it is dead-lettered as attempts_exhausted (unless the failure
	// carries its own deadline). Deliveries that wait for Graph's budget,
	// are turned away by a live lease or are handed back on shutdown are
	// not failed attempts; the input's lease counts the failed ones.
	MaxFailures int
	// Concurrency is how many messages one worker handles at once.
	Concurrency int
	// StepTimeout bounds one call of the step. The step's context ends
	// then; a step that does not return soon after is abandoned (see
	// runner.call) and the delivery is a failed attempt. It may be longer
	// than AckWait: in-progress acks keep the message while the step runs.
	StepTimeout time.Duration
	// DrainTimeout is how long Run lets in-flight steps finish once its
	// context is cancelled; the inputs of steps still running then are
	// handed back to the broker (nak without delay) for another worker.
	DrainTimeout time.Duration
	// ThrottleDeadline bounds how long an input may wait for Graph's
	// budget (429s and the shared write budget), measured from when it was
	// published. Throttling is not a failed attempt: under overload an
	// input may be told to wait many times without anything being wrong.
	ThrottleDeadline time.Duration
	// Backoff gives the redelivery delay after a failed attempt when the
	// service did not name one with Retry-After; its argument is the
	// input's failures so far.
	Backoff func(failures int) time.Duration
	// DeadLetterTries is how many times, across deliveries, an input's
	// dead letter may fail to be stored before the input is terminated
	// without one (logged at Error, counted in Stats.Abandoned): a dead
	// letter the DLQ keeps refusing would otherwise bring its input back
	// for ever.
	DeadLetterTries int
	// Streams are the settings of the streams and of the buckets the
	// runtime creates (leases, index): their replicas and the DLQ's limit.
	// They must be the same in every worker and in `guestflow provision`,
	// which main makes sure of by reading them from the configuration.
	Streams StreamOptions
	// Stats is where the worker counts; nil means DefaultStats.
	Stats *Stats
	// PendingInterval is how often the worker refreshes
	// guestflow_consumer_pending from its consumer's info.
	PendingInterval time.Duration
	Logger          *slog.Logger
	Now             func() time.Time
}

// Defaults.
const (
	DefaultAckWait     = 30 * time.Second
	DefaultMaxFailures = 10
	// DefaultStepTimeout is generous for one step, which makes a handful
	// of Graph or Dataverse calls that each answer within seconds: a step
	// that takes longer is stuck, not slow.
	DefaultStepTimeout = 2 * time.Minute
	// DefaultDrainTimeout stays below Kubernetes' default
	// terminationGracePeriodSeconds of 30 s, leaving a few seconds to hand
	// back the inputs of the steps still running and close the
	// connection before the kubelet's SIGKILL: an input handed back is
	// redelivered to another replica at once, one left to the SIGKILL only
	// after AckWait, and its lease then counts a failure and a death.
	DefaultDrainTimeout = 25 * time.Second
	// DefaultThrottleDeadline matches the contract's 15 minutes for waits.
	DefaultThrottleDeadline = 15 * time.Minute
	// The default backoff doubles from half a second to its two-minute
	// cap, reached at the ninth failed attempt: the ten failures
	// DefaultMaxFailures allows span about four minutes.
	DefaultBackoffInitial = 500 * time.Millisecond
	DefaultBackoffMax     = 2 * time.Minute
	// DefaultDeadLetterTries rides out a DLQ stream that is briefly
	// unavailable (a leader election, a restart) without retrying one that
	// refuses the dead letter for good.
	DefaultDeadLetterTries = 5
	// DefaultPendingInterval matches a usual scrape interval: the gauge
	// is never much older than the scrape that reads it.
	DefaultPendingInterval = 15 * time.Second
)

// SetDefaults fills zero fields.
func (o *Options) SetDefaults() {
	if o.AckWait <= 0 {
		o.AckWait = DefaultAckWait
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = DefaultMaxFailures
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.ThrottleDeadline <= 0 {
		o.ThrottleDeadline = DefaultThrottleDeadline
	}
	if o.StepTimeout <= 0 {
		o.StepTimeout = DefaultStepTimeout
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.Backoff == nil {
		o.Backoff = Backoff(DefaultBackoffInitial, DefaultBackoffMax)
	}
	if o.DeadLetterTries <= 0 {
		o.DeadLetterTries = DefaultDeadLetterTries
	}
	if o.Stats == nil {
		o.Stats = DefaultStats
	}
	if o.PendingInterval <= 0 {
		o.PendingInterval = DefaultPendingInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Run consumes step.Subject with the durable consumer step.Name until ctx
// is cancelled, and then drains (see drain): it stops pulling at once,
// lets the steps in flight finish for up to o.DrainTimeout, and hands the
// inputs of those still running back to the broker for another worker. It
// creates the streams and the consumer first (see ensureConsumer for a
// consumer that exists with other settings), and creates them again should
// they be deleted while it runs.
func Run(ctx context.Context, js jetstream.JetStream, step Step, o Options) error {
	o.SetDefaults()
	w := &runner{js: js, step: step, o: o, log: o.Logger.With("step", step.Name), handBack: make(chan struct{})}
	if err := w.starting(ctx, "making sure of the streams", func() error { return EnsureStreams(ctx, js, o.Streams) }); err != nil {
		return stopped(ctx, err)
	}
	var cons jetstream.Consumer
	if err := w.starting(ctx, "making sure of the consumer", func() (err error) {
		cons, _, err = w.ensureConsumer(ctx)
		return err
	}); err != nil {
		return stopped(ctx, err)
	}
	var ls *leases
	if err := w.starting(ctx, "opening the lease bucket", func() (err error) {
		ls, err = openLeases(ctx, js, o.Streams.Replicas, w.ackWait(), o.Now)
		return err
	}); err != nil {
		return stopped(ctx, err)
	}
	ls.recreated = w.recreated
	w.leases = ls
	w.log.Info("worker started", "subject", step.Subject, "ackwait", w.ackWait(),
		"step_timeout", o.StepTimeout, "drain_timeout", o.DrainTimeout)
	metrics.InitStep(step.Name, failure.Reasons)
	pending := w.reportPending(ctx, cons)
	defer pending()
	sem := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	defer w.drain(&wg)
	for {
		began := time.Now()
		err := w.consume(ctx, cons, sem, &wg)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, jetstream.ErrConnectionClosed) {
			return fmt.Errorf("consume %s: %w", step.Name, err)
		}
		w.log.Warn("the consumer is gone; creating it again", "err", err)
		if time.Since(began) < time.Second {
			// A consumer that fails at once (a pull the server rejects)
			// must not turn this into a busy loop.
			if !sleep(ctx, time.Second) {
				return nil
			}
		}
		if cons, err = w.reopen(ctx); err != nil {
			return stopped(ctx, err)
		}
	}
}

// drain waits for the deliveries in flight to end, for up to
// o.DrainTimeout, and then hands back the inputs of the steps still
// running: each is nak'ed without delay, so that another replica takes it
// at once rather than after AckWait, and its lease is freed without
// counting a failure or a death (the worker is stopping; the input did not
// fail). The steps' goroutines are abandoned as after a step timeout (see
// call), and the process exiting ends them.
func (w *runner) drain(wg *sync.WaitGroup) {
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	t := time.NewTimer(w.o.DrainTimeout)
	defer t.Stop()
	if n := w.inflight.Load(); n > 0 {
		w.log.Info("draining: letting the steps in flight finish", "inflight", n, "drain_timeout", w.o.DrainTimeout)
	}
	select {
	case <-finished:
	case <-t.C:
		w.log.Warn("steps still running at --drain-timeout; handing their inputs back to the broker",
			"inflight", w.inflight.Load(), "drain_timeout", w.o.DrainTimeout)
		close(w.handBack)
		<-finished
	}
	w.log.Info("worker stopped")
}

// consume pulls from cons until ctx ends or the consumer is gone, running
// each message in its own goroutine, at most o.Concurrency at once.
func (w *runner) consume(ctx context.Context, cons jetstream.Consumer, sem chan struct{}, wg *sync.WaitGroup) error {
	// The client buffers what it pulls, and a buffered message is already
	// on the AckWait clock without anyone sending in-progress acks for it:
	// buffer one message at a time, and pull only when a slot is free, so
	// that nothing waits in the buffer long enough to be redelivered to
	// another worker while it is still here.
	iter, err := cons.Messages(jetstream.PullMaxMessages(1))
	if err != nil {
		return fmt.Errorf("consume %s: %w", w.step.Name, err)
	}
	defer iter.Stop()
	// Shutdown drains rather than stops the iterator: Next still returns
	// what the client had already pulled, so that it can be handed back
	// at once instead of being dropped and redelivered after AckWait.
	defer context.AfterFunc(ctx, iter.Drain)()
	for {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			w.handBackBuffered(iter)
			return ctx.Err()
		}
		msg, err := iter.Next()
		if err != nil {
			<-sem
			if ctx.Err() != nil {
				w.handBackBuffered(iter)
				return err
			}
			if w.gone(ctx, err) {
				return err
			}
			w.log.Warn("pull failed", "err", err)
			continue
		}
		if ctx.Err() != nil {
			// Pulled before the shutdown, handed to this loop after it.
			<-sem
			w.handBackUnstarted(msg)
			w.handBackBuffered(iter)
			return ctx.Err()
		}
		wg.Add(1)
		w.inflight.Add(1)
		go func() {
			defer func() { <-sem; w.inflight.Add(-1); wg.Done() }()
			// In-flight work finishes on its own clock until the drain
			// ends: cancelling it at once on shutdown would only turn a
			// nearly done step into a retry.
			w.process(context.WithoutCancel(ctx), msg)
		}()
	}
}

// handBackBuffered hands back every message the drained iterator still
// holds, without waiting longer than a second for one.
func (w *runner) handBackBuffered(iter jetstream.MessagesContext) {
	iter.Drain()
	for {
		msg, err := iter.Next(jetstream.NextMaxWait(time.Second))
		if err != nil {
			return
		}
		w.handBackUnstarted(msg)
	}
}

// handBackUnstarted naks, without delay, a message pulled during the
// shutdown: no step ran, no lease was taken.
func (w *runner) handBackUnstarted(msg jetstream.Msg) {
	if err := msg.Nak(); err != nil {
		w.log.Warn("handing back a message pulled during shutdown failed; the server redelivers it after AckWait", "err", err)
		return
	}
	w.log.Info("handed back a message pulled during shutdown", "subject", msg.Subject())
}

// gone reports whether a pull error means the iterator will deliver
// nothing more. A deleted consumer (or its stream) ends the iterator with
// ErrConsumerDeleted; one deleted while this worker was disconnected is
// only noticed by missing heartbeats, after which the consumer is looked
// up.
func (w *runner) gone(ctx context.Context, err error) bool {
	switch {
	case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrMsgIteratorClosed),
		errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrBadRequest):
		return true
	case errors.Is(err, jetstream.ErrNoHeartbeat):
		_, err := w.js.Consumer(ctx, Stream, w.step.Name)
		return errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound)
	}
	return false
}

// reopen creates the stream and the consumer again, waiting out a broker
// that cannot be reached, until ctx ends. A consumer that someone else
// re-created with another filter stops the worker, as at start.
func (w *runner) reopen(ctx context.Context) (jetstream.Consumer, error) {
	for {
		err := w.restore(ctx, Stream)
		if err == nil {
			var cons jetstream.Consumer
			var created bool
			cons, created, err = w.ensureConsumer(ctx)
			if err == nil {
				if created {
					w.recreated("consumer " + w.step.Name)
				}
				return cons, nil
			}
			var conflict *conflictError
			if errors.As(err, &conflict) {
				return nil, err
			}
		}
		w.log.Warn("creating the consumer again failed; trying again in a second", "err", err)
		if !sleep(ctx, time.Second) {
			return nil, ctx.Err()
		}
	}
}

// starting runs one step of the start, again every second for as long as
// it fails the way a JetStream cluster in motion makes it fail: a request
// left unanswered while a leader is elected, or the cluster saying it is
// temporarily unavailable or short of resources (as it does for a
// consumer created while its stream is being raised to more replicas, or
// the same consumer being created for another replica). Exiting on that
// would only have the worker restarted into the same moment. A refusal
// (provision.DeniedError: a permission the user lacks also shows as a
// time-out), a conflict or any other error stops the worker at once.
func (w *runner) starting(ctx context.Context, what string, f func() error) error {
	for {
		err := f()
		if err == nil || !transientStart(err) {
			return err
		}
		w.log.Warn(what+" failed for now; trying again in a second", "err", err)
		if !sleep(ctx, time.Second) {
			return ctx.Err()
		}
	}
}

// JetStream's error codes for a cluster that cannot serve a request now but
// will: "JetStream system temporarily unavailable", "insufficient
// resources" (also said while a stream's replicas change).
const (
	errCodeClusterNotAvailable   jetstream.ErrorCode = 10008
	errCodeInsufficientResources jetstream.ErrorCode = 10023
)

// transientStart reports whether a start that failed with err is worth
// trying again; see starting.
func transientStart(err error) bool {
	var denied *provision.DeniedError
	if errors.As(err, &denied) {
		return false
	}
	var api *jetstream.APIError
	if errors.As(err, &api) {
		return api.ErrorCode == errCodeClusterNotAvailable || api.ErrorCode == errCodeInsufficientResources
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
}

// sleep waits d, or reports false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// stopped reports err unless it is only the shutdown arriving during start.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}
