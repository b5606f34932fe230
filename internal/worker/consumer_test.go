package worker_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

func TestWorkerWithOtherSettingsKeepsTheConsumers(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	// The first replica creates the consumer with the defaults, and stops.
	first, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- worker.Run(first, h.js, worker.Step{Name: "invite", Subject: events.SubjectJoined, Handler: worker.HandlerFunc(emitInvited)}, fast)
	}()
	h.waitForConsumer()
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// The second is started with a shorter AckWait and less concurrency.
	var l logs
	o := fast
	o.AckWait = 2 * time.Second
	o.Concurrency = 4
	o.Logger = l.logger()
	release := make(chan struct{})
	h.run(worker.HandlerFunc(func(ctx context.Context, in event.Event) (*event.Event, error) {
		<-release
		return emitInvited(ctx, in)
	}), o)
	l.wait(t, "worker started")

	c, err := h.js.Consumer(ctx, worker.Stream, "invite")
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.CachedInfo().Config
	if cfg.AckWait != worker.DefaultAckWait || cfg.MaxAckPending != 64 {
		t.Errorf("consumer rewritten to AckWait %v, MaxAckPending %d; want the first replica's %v, 64", cfg.AckWait, cfg.MaxAckPending, worker.DefaultAckWait)
	}
	warned := map[string]bool{}
	for _, r := range l.all(slog.LevelWarn) {
		warned[r.attrs["field"]+" "+r.attrs["consumer"]+" "+r.attrs["worker"]] = true
	}
	for _, want := range []string{"AckWait 30s 2s", "MaxAckPending 64 16"} {
		if !warned[want] {
			t.Errorf("no Warn for %q; warned %v", want, warned)
		}
	}

	// The worker works to the consumer's AckWait: the lease it holds on
	// an input lasts as long as the consumer's delivery, not 2s.
	h.publishJoined("drift-1")
	kv, err := h.js.KeyValue(ctx, worker.LeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	var until time.Time
	for i := 0; until.IsZero(); i++ {
		if e, err := kv.Get(ctx, "invite.1"); err == nil {
			ns, _ := strconv.ParseInt(strings.Fields(string(e.Value()))[0], 10, 64)
			until = time.Unix(0, ns)
		} else if i == 500 {
			t.Fatal("no lease taken")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	if left := time.Until(until); left < 10*time.Second {
		t.Errorf("lease held for %v more, want about the consumer's 30s AckWait", left.Round(time.Second))
	}
	h.find(worker.Stream, events.SubjectInvited, "drift-1")
}

func TestConsumerOfAnotherSubjectIsRefused(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.js.CreateConsumer(ctx, worker.Stream, jetstream.ConsumerConfig{
		Durable: "invite", FilterSubject: events.SubjectInvited, AckPolicy: jetstream.AckExplicitPolicy,
	}); err != nil {
		t.Fatal(err)
	}
	run, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := worker.Run(run, h.js, worker.Step{Name: "invite", Subject: events.SubjectJoined, Handler: worker.HandlerFunc(emitInvited)}, fast)
	if err == nil || !strings.Contains(err.Error(), "FilterSubject") {
		t.Errorf("Run = %v, want a refusal naming FilterSubject", err)
	}
	c, err := h.js.Consumer(ctx, worker.Stream, "invite")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.CachedInfo().Config.FilterSubject; got != events.SubjectInvited {
		t.Errorf("consumer's filter changed to %q", got)
	}
}
