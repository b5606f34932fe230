package ops_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/broker"
	"github.com/guestflow/guestflow/internal/ops"
)

// awaitReadyz polls /readyz until it answers code with a body containing
// want.
func awaitReadyz(t *testing.T, s *ops.Server, code int, want string) {
	t.Helper()
	var got int
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got, body = get(t, "http://"+s.Addr()+"/readyz"); got == code && strings.Contains(body, want) {
			return
		}
	}
	t.Fatalf("/readyz did not answer %d with %q within 10s; last %d:\n%s", code, want, got, body)
}

// TestReadyzFollowsTheBrokerAndTheConsumer: not ready until the step's
// consumer exists, unready while NATS is lost, ready again once the
// connection is back.
func TestReadyzFollowsTheBrokerAndTheConsumer(t *testing.T) {
	store := t.TempDir()
	ns, err := broker.Start(broker.Options{Port: -1, StoreDir: store})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			ns.Shutdown()
		}
	})
	port := ns.Addr().(*net.TCPAddr).Port
	nc, err := nats.Connect(ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, context.Background(), ops.Options{Checks: []ops.Check{
		ops.NATSConnected(nc), ops.ConsumerBound(js, "GUESTFLOW", "invite"),
	}})

	awaitReadyz(t, s, 503, "fail  consumer invite: no consumer invite on stream GUESTFLOW yet")
	ctx := context.Background()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "GUESTFLOW", Subjects: []string{"guestflow.>"}, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "invite", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	awaitReadyz(t, s, 200, "ok    consumer invite")

	ns.Shutdown()
	ns.WaitForShutdown()
	stopped = true
	awaitReadyz(t, s, 503, "fail  nats: NATS connection is")
	if _, body := get(t, "http://"+s.Addr()+"/readyz"); !strings.Contains(body, "fail  consumer invite: not known") {
		t.Errorf("the consumer check asked a broker that is gone:\n%s", body)
	}

	// The same port and store: the consumer is still there.
	ns, err = broker.Start(broker.Options{Port: port, StoreDir: store})
	if err != nil {
		t.Fatal(err)
	}
	stopped = false
	awaitReadyz(t, s, 200, "ok    nats")
}
