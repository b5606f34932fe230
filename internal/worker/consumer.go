package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/provision"
)

// consumerConfig is the durable consumer a worker of step creates when
// there is none.
func consumerConfig(step Step, o Options) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
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
	}
}

// ensureConsumer creates the step's durable consumer when there is none,
// and otherwise keeps the one there, and reports whether it created it.
//
// The consumer is shared by every replica of the step. Updating it to
// this worker's settings, as workers once did, let one replica started with
// another --ack-wait or --concurrency rewrite them for all the others,
// silently, and the others then worked to an AckWait that was no longer
// the consumer's: a worker that believes AckWait is longer than it is
// sends its in-progress acks too late and has inputs redelivered under
// its feet. Refusing to start instead would make a rolling change of
// --ack-wait impossible without downtime. So a worker keeps the
// consumer, says at Warn what differs, and works to the consumer's
// AckWait (in-progress cadence and lease TTL). An operator changes the
// consumer on purpose, with `nats consumer edit` or by deleting it so the
// next worker creates it anew.
//
// Two differences are refused rather than adopted, because the worker
// cannot do its job on such a consumer: another filter subject means the
// consumer is another step's (or someone else's) and this worker would
// consume the wrong events; an ack policy other than explicit would break
// ack-after-PubAck, nak-with-delay and term.
func (w *runner) ensureConsumer(ctx context.Context) (jetstream.Consumer, bool, error) {
	want := consumerConfig(w.step, w.o)
	created := false
	c, err := w.js.Consumer(ctx, Stream, w.step.Name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		c, err = w.js.CreateConsumer(ctx, Stream, want)
		created = err == nil
		if errors.Is(err, jetstream.ErrConsumerExists) {
			// Another replica was first, with other settings.
			c, err = w.js.Consumer(ctx, Stream, w.step.Name)
		}
	}
	if err != nil {
		return nil, false, fmt.Errorf("consumer %s: %w", w.step.Name, provision.Denied(w.js.Conn(), err))
	}
	have := c.CachedInfo().Config
	for _, d := range drifts(have, want) {
		if d.conflict {
			return nil, false, &conflictError{step: w.step.Name, drift: d}
		}
		w.log.Warn("the shared consumer's setting differs from this worker's; keeping the consumer's (edit or delete the consumer to change it)",
			"field", d.field, "consumer", d.consumer, "worker", d.worker)
	}
	ackWait := have.AckWait
	if ackWait <= 0 {
		ackWait = want.AckWait
	}
	w.setAckWait(ackWait)
	return c, created, nil
}

// drift is one field guestflow sets that differs between the consumer
// there and the one this worker would create.
type drift struct {
	field            string
	consumer, worker any
	conflict         bool
}

func drifts(have, want jetstream.ConsumerConfig) []drift {
	var out []drift
	add := func(field string, h, w any, conflict bool) {
		out = append(out, drift{field: field, consumer: h, worker: w, conflict: conflict})
	}
	if h, w := filters(have), filters(want); !slices.Equal(h, w) {
		add("FilterSubject", h, w, true)
	}
	if have.AckPolicy != want.AckPolicy {
		add("AckPolicy", have.AckPolicy, want.AckPolicy, true)
	}
	if have.AckWait != want.AckWait {
		add("AckWait", have.AckWait, want.AckWait, false)
	}
	if have.MaxAckPending != want.MaxAckPending {
		add("MaxAckPending", have.MaxAckPending, want.MaxAckPending, false)
	}
	if have.MaxDeliver != want.MaxDeliver {
		add("MaxDeliver", have.MaxDeliver, want.MaxDeliver, false)
	}
	if have.DeliverPolicy != want.DeliverPolicy {
		add("DeliverPolicy", have.DeliverPolicy, want.DeliverPolicy, false)
	}
	return out
}

// conflictError is a consumer this worker must not consume from.
type conflictError struct {
	step string
	drift
}

func (e *conflictError) Error() string {
	return fmt.Sprintf("consumer %s on stream %s has %s %v, but this worker needs %v: it belongs to another step or was changed by hand; delete it (nats consumer rm %s %s) or fix this worker's configuration",
		e.step, Stream, e.field, e.consumer, e.worker, Stream, e.step)
}

// filters is a consumer's filter, whichever field holds it.
func filters(c jetstream.ConsumerConfig) []string {
	if len(c.FilterSubjects) > 0 {
		return c.FilterSubjects
	}
	if c.FilterSubject == "" {
		return nil
	}
	return []string{c.FilterSubject}
}

// ackWait is the consumer's AckWait, which the worker works to.
func (w *runner) ackWait() time.Duration { return time.Duration(w.ackWaitNs.Load()) }

func (w *runner) setAckWait(d time.Duration) {
	w.ackWaitNs.Store(int64(d))
	if w.leases != nil {
		w.leases.setTTL(d)
	}
}
