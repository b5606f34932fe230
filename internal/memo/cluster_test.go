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

// A write the bucket's servers do not answer fails within a few bounded
// tries, not at the caller's deadline: a step keeps a record under a
// deadline of minutes, and must be retried once the cluster has a leader
// again rather than hold its input that long. Such writes are lost with a
// leader killed (its replicas drop what they receive until they have
// elected another) and refused by a bucket whose replicas lost their
// quorum. Reads are answered by any replica.
func TestWritesFailFastWithoutALeader(t *testing.T) {
	defer memo.SetOpTimeout(time.Second)()
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

// silence replaces the bucket with a subscriber that answers nothing, and
// returns what ends it.
func silence(t *testing.T, url string) (end func()) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{"$JS.API.DIRECT.GET.KV_" + memo.Bucket + ".>", "$KV." + memo.Bucket + ".>"} {
		if _, err := nc.Subscribe(subj, func(*nats.Msg) {}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc.Close
}

// A reply that never comes costs a step a few bounded tries.
func TestOperationsAreBoundedWhenTheBucketDoesNotAnswer(t *testing.T) {
	defer memo.SetOpTimeout(time.Second)()
	url := brokertest.URL(t)
	js := brokertest.JetStream(t, url)
	s, err := memo.Open(t.Context(), js, memo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(t.Context(), "KV_"+memo.Bucket); err != nil {
		t.Fatal(err)
	}
	silence(t, url)
	for _, op := range []struct {
		name  string
		do    func(context.Context) error
		limit time.Duration
	}{
		{"Put", func(ctx context.Context) error { return s.Put(ctx, "invite", "x", record{}) }, 10 * time.Second},
		{"Get", func(ctx context.Context) error { _, err := s.Get(ctx, "invite", "x", &record{}); return err }, 3 * time.Second},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a step's deadline
		began := time.Now()
		err := op.do(ctx)
		cancel()
		if took := time.Since(began); err == nil || took > op.limit {
			t.Errorf("%s against a bucket that does not answer: %v after %s; want an error within %s", op.name, err, took.Round(time.Millisecond), op.limit)
		}
	}
}

// A record whose write goes unanswered for a moment — a leader election —
// is written once the bucket answers again, so that the step that did
// what it records is not retried into doing it twice.
func TestPutOutlastsABriefSilence(t *testing.T) {
	defer memo.SetOpTimeout(time.Second)()
	url := brokertest.URL(t)
	js := brokertest.JetStream(t, url)
	s, err := memo.Open(t.Context(), js, memo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(t.Context(), "KV_"+memo.Bucket); err != nil {
		t.Fatal(err)
	}
	end := silence(t, url)
	time.AfterFunc(time.Second, end)
	if err := s.Put(t.Context(), "notify", "mailed", record{Email: "a@x.example"}); err != nil {
		t.Fatalf("Put across a second of silence: %v", err)
	}
	var r record
	if ok, err := s.Get(t.Context(), "notify", "mailed", &r); err != nil || !ok || r.Email != "a@x.example" {
		t.Errorf("the record: %v, %v, %+v", ok, err, r)
	}
}
