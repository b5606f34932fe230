package brokertest

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster starts n servers clustered on loopback, each with JetStream and
// its store in the test's temporary folder, and returns them once the
// cluster has a JetStream meta leader that every server follows. They stop
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
	return servers
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
