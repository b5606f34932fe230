// Package brokertest starts an embedded NATS server with JetStream for a
// test, on a free loopback port with its store in the test's temporary
// folder, and stops it when the test ends.
package brokertest

import (
	"testing"

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
