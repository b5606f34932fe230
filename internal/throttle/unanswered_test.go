package throttle_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/guestflow/guestflow/internal/broker/brokertest"
	"github.com/guestflow/guestflow/internal/throttle"
)

// A reply that never comes — the bucket's leader killed with the request,
// its replicas dropping what they receive while they elect another — costs
// a caller seconds, not its deadline: a Graph call waits for the budget
// under a step's deadline of minutes. The bucket here is replaced by a
// subscriber that answers nothing.
func TestAcquireIsBoundedWhenTheBucketDoesNotAnswer(t *testing.T) {
	url := brokertest.URL(t)
	js := brokertest.JetStream(t, url)
	g, err := throttle.Open(t.Context(), js, throttle.Options{WriteRate: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Acquire(t.Context(), throttle.Write); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(t.Context(), "KV_"+throttle.Bucket); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, subj := range []string{"$JS.API.DIRECT.GET.KV_" + throttle.Bucket + ".>", "$KV." + throttle.Bucket + ".>"} {
		if _, err := nc.Subscribe(subj, func(*nats.Msg) {}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a step's deadline
	defer cancel()
	began := time.Now()
	err = g.Acquire(ctx, throttle.Write)
	if took := time.Since(began); err == nil || took > 15*time.Second {
		t.Errorf("Acquire against a bucket that does not answer: %v after %s; want an error within seconds", err, took.Round(time.Millisecond))
	}
}
