// Package broker runs an embedded NATS server with JetStream for
// `guestflow dev` and for tests, so neither needs a broker installed.
package broker

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configure the embedded server.
type Options struct {
	// Host and Port to listen on; Port -1 picks a free port.
	Host string
	Port int
	// HTTPPort is the monitoring port; 0 disables monitoring, -1 picks one.
	HTTPPort int
	// StoreDir keeps JetStream's file storage.
	StoreDir string
}

// Start runs the server and waits until it accepts connections.
func Start(o Options) (*server.Server, error) {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.StoreDir == "" {
		return nil, errors.New("broker: a store directory is required")
	}
	opts := &server.Options{
		ServerName: "guestflow-dev",
		Host:       o.Host,
		Port:       o.Port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoSigs:     true,
		NoLog:      true,
	}
	if o.HTTPPort != 0 {
		opts.HTTPHost = o.Host
		opts.HTTPPort = o.HTTPPort
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("broker: not ready on %s:%d within 10s (is the port taken?)", o.Host, o.Port)
	}
	return s, nil
}
