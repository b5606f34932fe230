package memo_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/guestflow/guestflow/internal/broker/brokertest"
	"github.com/guestflow/guestflow/internal/memo"
)

// A write the bucket's servers do not answer fails within seconds, not at
// the caller's deadline: a step keeps a record under a deadline of
// minutes, and must be retried once the cluster has a leader again rather
// than hold its input that long. Such writes are lost with a leader killed
// (its replicas drop what they receive until they have elected another)
// and refused by a bucket whose replicas lost their quorum. Reads are
// answered by any replica.
func TestWritesFailFastWithoutALeader(t *testing.T) {
	servers := brokertest.Cluster(t, 3)
	js := brokertest.JetStream(t, brokertest.ClientURLs(servers))
	s, err := memo.Open(t.Context(), js, memo.Options{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "invite", "before", record{Email: "a@x.example"}); err != nil {
		t.Fatal(err)
	}
	put := func(what string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a step's deadline
		defer cancel()
		began := time.Now()
		err := s.Put(ctx, "invite", "after", record{Email: "b@x.example"})
		if took := time.Since(began); took > 15*time.Second {
			t.Errorf("Put %s took %s (%v), want an answer within seconds", what, took.Round(time.Millisecond), err)
		}
	}

	// The bucket's leader goes; the write reaches a replica.
	st, err := js.Stream(t.Context(), "KV_"+memo.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	leader := st.CachedInfo().Cluster.Leader
	var rest []*server.Server
	for _, ns := range servers {
		if ns.Name() == leader {
			ns.Shutdown()
		} else {
			rest = append(rest, ns)
		}
	}
	if len(rest) != 2 {
		t.Fatalf("leader %q is none of the servers", leader)
	}
	put("while the replicas elect a leader")

	// Only one server left: no quorum.
	rest[0].Shutdown()
	put("without a quorum")
	var r record
	if ok, err := s.Get(t.Context(), "invite", "before", &r); err != nil || !ok || r.Email != "a@x.example" {
		t.Errorf("Get from a replica: %v, %v, %+v", ok, err, r)
	}
}

// A reply that never comes costs a step seconds: the bucket here is
// replaced by a subscriber that answers nothing.
func TestOperationsAreBoundedWhenTheBucketDoesNotAnswer(t *testing.T) {
	url := brokertest.URL(t)
	js := brokertest.JetStream(t, url)
	s, err := memo.Open(t.Context(), js, memo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(t.Context(), "KV_"+memo.Bucket); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, subj := range []string{"$JS.API.DIRECT.GET.KV_" + memo.Bucket + ".>", "$KV." + memo.Bucket + ".>"} {
		if _, err := nc.Subscribe(subj, func(*nats.Msg) {}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for name, op := range map[string]func(context.Context) error{
		"Put": func(ctx context.Context) error { return s.Put(ctx, "invite", "x", record{}) },
		"Get": func(ctx context.Context) error { _, err := s.Get(ctx, "invite", "x", &record{}); return err },
	} {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a step's deadline
		began := time.Now()
		err := op(ctx)
		cancel()
		if took := time.Since(began); err == nil || took > 15*time.Second {
			t.Errorf("%s against a bucket that does not answer: %v after %s; want an error within seconds", name, err, took.Round(time.Millisecond))
		}
	}
}
