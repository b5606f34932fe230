package worker

import (
	"context"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/metrics"
	"github.com/guestflow/guestflow/pkg/events"
)

// DefaultStats' counters, exported as they are: every number in Stats
// needs an operator when it grows, and an alert cannot read a log.
var (
	_ = metrics.CounterFunc("guestflow_worker_dead_letters_abandoned_total",
		"Inputs terminated without a dead letter because GUESTFLOW_DLQ refused theirs DeadLetterTries times: onboardings stopped with nothing to replay. Anything above zero needs a person.",
		func() float64 { return float64(DefaultStats.Abandoned.Load()) })
	_ = metrics.CounterFunc("guestflow_worker_dlq_full_total",
		"Dead letters GUESTFLOW_DLQ refused because it was at its byte limit (nats.dlqMaxBytes); each is retried, and its input abandoned after DeadLetterTries refusals.",
		func() float64 { return float64(DefaultStats.DLQFull.Load()) })
	_ = metrics.CounterFunc("guestflow_worker_dead_letters_truncated_total",
		"Dead letters stored with a shortened body because the whole input would not fit the broker's max payload.",
		func() float64 { return float64(DefaultStats.Truncated.Load()) })
	_ = metrics.CounterFunc("guestflow_worker_recreated_total",
		"Streams, key-value buckets and consumers the worker found deleted under it and created again.",
		func() float64 { return float64(DefaultStats.Recreated.Load()) })
	_ = metrics.CounterFunc("guestflow_worker_index_failures_total",
		"Messages that could not be filed in GUESTFLOW_INDEX; guestflow status may miss them unless run with --scan.",
		func() float64 { return float64(DefaultStats.IndexFailures.Load()) })
	_ = metrics.CounterFunc("guestflow_worker_step_timeouts_total",
		"Steps abandoned because they had not returned shortly after --step-timeout; each may have left a goroutine running until a restart.",
		func() float64 { return float64(DefaultStats.StepTimeouts.Load()) })
)

// onboarded observes guestflow_onboarding_duration_seconds when ev, just
// stored for the first time, is the onboarded event: from the joined
// event's time, which every event of the onboarding carries (see
// events.JoinedTime), to now. An event without a joined time (built by an
// older release) is not observed.
func (w *runner) onboarded(ev event.Event) {
	if ev.Type() != events.TypeOnboarded {
		return
	}
	joined, ok := events.JoinedTime(ev)
	if !ok {
		return
	}
	metrics.OnboardingDuration.Observe(max(w.o.Now().Sub(joined), 0).Seconds())
}

// pendingTimeout bounds one refresh of the pending gauge.
const pendingTimeout = 5 * time.Second

// reportDLQ sets guestflow_dlq_bytes and guestflow_dlq_max_bytes from
// GUESTFLOW_DLQ's info, so that an alert fires while the stream still has
// room (it refuses new dead letters once full, see dlqFull). A failed read
// leaves the last values: they are the stream's, not this worker's, and
// the pending gauge's disappearance already says the broker is not
// answering.
func (w *runner) reportDLQ(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, pendingTimeout)
	defer cancel()
	s, err := w.js.Stream(ctx, DLQStream)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Debug("reading the dead-letter stream's size failed", "err", err)
		}
		return
	}
	info := s.CachedInfo()
	metrics.DLQBytes.Set(float64(info.State.Bytes))
	metrics.DLQMaxBytes.Set(float64(limit(info.Config.MaxBytes)))
}

// limit is a stream limit with "none" as -1, whatever the server said.
func limit(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// reportPending keeps guestflow_consumer_pending{step} at the consumer's
// backlog until ctx ends or stop is called, refreshing it every
// o.PendingInterval; stop also removes the series. The DLQ's gauges are
// refreshed on the same tick (reportDLQ). The backlog is what the consumer
// has not finished: NumPending, the inputs not yet delivered, plus
// NumAckPending, those delivered and not yet acked, termed or
// dead-lettered, which includes every input waiting for a redelivery
// after a failure or a throttle. Both matter: a step that fails every
// input has nothing pending and everything ack-pending.
//
// It is refreshed here rather than asked for at scrape time so that a
// scrape never waits on the broker (when the broker is slow, /metrics must
// still answer at once) and the broker gets one request per interval
// whatever scrapes. The consumer is shared, so every replica reports the
// same number: aggregate it with max, not sum. When the info cannot be
// read the series is removed rather than left at a stale value.
func (w *runner) reportPending(ctx context.Context, cons jetstream.Consumer) (stop func()) {
	gauge := metrics.ConsumerPending
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(w.o.PendingInterval)
		defer t.Stop()
		for {
			ictx, cancel := context.WithTimeout(ctx, pendingTimeout)
			info, err := cons.Info(ictx)
			cancel()
			switch {
			case err == nil:
				gauge.WithLabelValues(w.step.Name).Set(float64(info.NumPending) + float64(info.NumAckPending))
			case ctx.Err() == nil:
				gauge.DeleteLabelValues(w.step.Name)
				w.log.Debug("reading the consumer's backlog failed", "err", err)
			}
			w.reportDLQ(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		cancel()
		<-done
		gauge.DeleteLabelValues(w.step.Name)
	}
}
