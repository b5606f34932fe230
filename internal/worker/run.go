package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Options tune the runtime. The zero value is usable: SetDefaults fills in
// the contract's defaults.
type Options struct {
	// AckWait is how long the server waits for an ack before redelivering;
	// long steps extend it with in-progress acks.
	AckWait time.Duration
	// MaxAttempts is how many deliveries a retryable failure gets before it
	// is dead-lettered (unless the failure carries its own deadline).
	MaxAttempts int
	// Concurrency is how many messages one worker handles at once.
	Concurrency int
	// StepTimeout bounds one call of the step.
	StepTimeout time.Duration
	// ThrottleDeadline bounds how long an input may wait for Graph's
	// budget (429s and the shared write budget), measured from when it was
	// published. Throttling does not use up attempts: under overload an
	// input may be told to wait many times without anything being wrong.
	ThrottleDeadline time.Duration
	// Backoff gives the redelivery delay after a failed attempt when the
	// service did not name one with Retry-After.
	Backoff func(attempt int) time.Duration
	Logger  *slog.Logger
	Now     func() time.Time
}

// Contract defaults.
const (
	DefaultAckWait     = 30 * time.Second
	DefaultMaxAttempts = 10
	// DefaultThrottleDeadline matches the contract's 15 minutes for waits.
	DefaultThrottleDeadline = 15 * time.Minute
	// The default backoff doubles from half a second to its two-minute
	// cap, reached at the ninth failed attempt: the ten default attempts
	// span about four minutes.
	DefaultBackoffInitial = 500 * time.Millisecond
	DefaultBackoffMax     = 2 * time.Minute
)

// SetDefaults fills zero fields.
func (o *Options) SetDefaults() {
	if o.AckWait <= 0 {
		o.AckWait = DefaultAckWait
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.ThrottleDeadline <= 0 {
		o.ThrottleDeadline = DefaultThrottleDeadline
	}
	if o.StepTimeout <= 0 {
		o.StepTimeout = 2 * time.Minute
	}
	if o.Backoff == nil {
		o.Backoff = Backoff(DefaultBackoffInitial, DefaultBackoffMax)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Run consumes step.Subject with the durable consumer step.Name until ctx
// is cancelled, then lets in-flight messages finish. It creates the streams
// and the consumer first.
func Run(ctx context.Context, js jetstream.JetStream, step Step, o Options) error {
	o.SetDefaults()
	if err := EnsureStreams(ctx, js, StreamOptions{}); err != nil {
		return stopped(ctx, err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, Stream, jetstream.ConsumerConfig{
		Durable:       step.Name,
		Description:   "guestflow " + step.Name + " step",
		FilterSubject: step.Subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		// The runtime, not the server, decides when to give up, so that
		// nothing is dropped silently: it dead-letters instead.
		MaxDeliver:    -1,
		MaxAckPending: 4 * o.Concurrency,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return stopped(ctx, fmt.Errorf("consumer %s: %w", step.Name, err))
	}
	ls, err := openLeases(ctx, js, o.AckWait, o.Now)
	if err != nil {
		return stopped(ctx, err)
	}
	// The client buffers what it pulls, and a buffered message is already
	// on the AckWait clock without anyone sending in-progress acks for it:
	// buffer one message at a time, and pull only when a slot is free, so
	// that nothing waits in the buffer long enough to be redelivered to
	// another worker while it is still here.
	iter, err := cons.Messages(jetstream.PullMaxMessages(1))
	if err != nil {
		return stopped(ctx, fmt.Errorf("consume %s: %w", step.Name, err))
	}
	go func() { <-ctx.Done(); iter.Stop() }()

	w := &runner{js: js, step: step, o: o, log: o.Logger.With("step", step.Name), leases: ls}
	w.log.Info("worker started", "subject", step.Subject)
	sem := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		sem <- struct{}{}
		msg, err := iter.Next()
		if err != nil {
			<-sem
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
				w.log.Info("worker stopped")
				return nil
			}
			w.log.Warn("pull failed", "err", err)
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			// In-flight work finishes on its own clock: cancelling it on
			// shutdown would only turn a nearly done step into a retry.
			w.process(context.WithoutCancel(ctx), msg)
		}()
	}
}

// stopped reports err unless it is only the shutdown arriving during start.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}
