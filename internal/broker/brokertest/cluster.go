package brokertest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster starts n servers clustered on loopback, each with JetStream and
// its store in the test's temporary folder, and returns them once the
// cluster has a JetStream meta leader that every server follows and each
// server's clients can create a stream. They stop
// when the test ends. Their client URLs, joined with commas, are a server
// list nats.Connect takes.
func Cluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ports[i] = freePort(t)
	}
	routes := make([]string, n)
	for i, p := range ports {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	servers := make([]*server.Server, n)
	for i := range servers {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
			Cluster: server.ClusterOpts{Name: "brokertest", Host: "127.0.0.1", Port: ports[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		}
		ns, err := server.NewServer(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ns.Shutdown)
		go ns.Start()
		servers[i] = ns
	}
	for _, ns := range servers {
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatal("a clustered NATS server is not ready within 10s")
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for !metaReady(servers) {
		if time.Now().After(deadline) {
			t.Fatal("the cluster has no JetStream meta leader within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, ns := range servers {
		apiAnswers(t, ns, time.Until(deadline))
	}
	return servers
}

// apiAnswers waits until a client of ns gets its JetStream API requests
// answered, a stream's creation included. A cluster whose meta group has
// just formed was seen to leave a stream creation unanswered for a minute
// although every server said it was current and account information was
// answered; a creation asked again is answered.
func apiAnswers(t testing.TB, ns *server.Server, within time.Duration) {
	t.Helper()
	js := JetStream(t, ns.ClientURL())
	probe := jetstream.StreamConfig{Name: "BROKERTEST_PROBE_" + ns.Name(), Subjects: []string{"brokertest.probe." + ns.Name()}, Storage: jetstream.MemoryStorage}
	deadline := time.Now().Add(max(within, 5*time.Second))
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.CreateOrUpdateStream(ctx, probe)
		if err == nil {
			err = js.DeleteStream(ctx, probe.Name)
		}
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %s: the JetStream API does not answer: %v", ns.Name(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ClientURLs are the servers' client URLs, joined with commas.
func ClientURLs(servers []*server.Server) string {
	urls := make([]string, len(servers))
	for i, ns := range servers {
		urls[i] = ns.ClientURL()
	}
	return strings.Join(urls, ",")
}

// metaReady reports whether one server leads the JetStream meta group,
// sees every server as a peer with JetStream, and every server is current.
func metaReady(servers []*server.Server) bool {
	leaders := 0
	for _, ns := range servers {
		if ns.JetStreamIsLeader() {
			leaders++
			// Only the leader answers; the others return nil.
			if len(ns.JetStreamClusterPeers()) != len(servers) {
				return false
			}
		}
		if !ns.JetStreamIsCurrent() {
			return false
		}
	}
	return leaders == 1
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
