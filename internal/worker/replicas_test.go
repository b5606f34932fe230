package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/broker/brokertest"
	"github.com/guestflow/guestflow/internal/index"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// Streams, buckets and the step's consumer made on one server of a cluster
// are raised in place when the workers are given more replicas: the
// consumer, created without replicas of its own, follows its stream.
func TestWorkerRaisesReplicasInPlace(t *testing.T) {
	servers := brokertest.Cluster(t, 3)
	js := brokertest.JetStream(t, brokertest.ClientURLs(servers))
	h := &harness{t: t, js: js}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// A first worker with the default, one replica, and one input through.
	if err := worker.EnsureStreams(ctx, js, worker.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	stop := h.start(permanent, fast)
	h.publishJoined("r1")
	h.settled()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	replicas := func(stream string) int {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatalf("%s: %v", stream, err)
		}
		return s.CachedInfo().Config.Replicas
	}
	for _, s := range []string{worker.Stream, worker.DLQStream, "KV_" + worker.LeaseBucket, "KV_" + index.Bucket} {
		if r := replicas(s); r != 1 {
			t.Fatalf("%s has %d replicas before, want 1", s, r)
		}
	}

	// Workers given three.
	o := fast
	o.Streams.Replicas = 3
	h.run(permanent, o)
	h.publishJoined("r3")
	h.settled()
	for _, s := range []string{worker.Stream, worker.DLQStream, "KV_" + worker.LeaseBucket, "KV_" + index.Bucket} {
		if r := replicas(s); r != 3 {
			t.Errorf("%s has %d replicas, want 3", s, r)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := js.Consumer(ctx, worker.Stream, "invite")
		var info *jetstream.ConsumerInfo
		if err == nil {
			info, err = c.Info(ctx)
		}
		if err == nil && info.Cluster != nil && len(info.Cluster.Replicas) == 2 {
			if info.Config.Replicas != 0 {
				t.Errorf("the consumer has replicas of its own (%d): it would not follow its stream", info.Config.Replicas)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consumer did not follow its stream to 3 replicas: %+v, %v", info, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Both inputs dead-lettered, none lost in the move.
	if n := h.count(worker.DLQStream, worker.DLQPrefix+"invite"); n != 2 {
		t.Errorf("%d dead letters, want 2", n)
	}
	if n := h.count(worker.Stream, events.SubjectJoined); n != 2 {
		t.Errorf("%d joined events, want 2", n)
	}
}
