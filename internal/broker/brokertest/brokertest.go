// Package brokertest starts an embedded NATS server with JetStream for a
// test, on a free loopback port with its store in the test's temporary
// folder, and stops it when the test ends.
package brokertest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/broker"
)

// URL starts a server and returns its client URL.
func URL(t testing.TB) string {
	t.Helper()
	ns, err := broker.Start(broker.Options{Port: -1, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	return ns.ClientURL()
}

// JetStream connects to url, closing the connection when the test ends.
func JetStream(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// Start starts a server on a free loopback port with JetStream, after
// configure (when not nil) has changed its options: users, permissions,
// TLS. It stops when the test ends.
func Start(t testing.TB, configure func(*server.Options)) *server.Server {
	t.Helper()
	o := &server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoSigs: true, NoLog: true,
	}
	if configure != nil {
		configure(o)
	}
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		t.Fatal("the NATS server is not ready within 10s")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}
