package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream names and the subjects they hold (docs/streams.md).
const (
	Stream         = "GUESTFLOW"
	StreamSubjects = "guestflow.user.>"
	DLQStream      = "GUESTFLOW_DLQ"
	DLQSubjects    = "guestflow.dlq.>"
	DLQPrefix      = "guestflow.dlq."
)

// Stream defaults of the contract.
const (
	DefaultMaxAge = 30 * 24 * time.Hour
	// DuplicateWindow must outlast the longest gap between a publish and
	// its retry after a lost PubAck; two minutes is the contract's floor.
	DuplicateWindow = 2 * time.Minute
)

// StreamOptions are the operator-tunable stream settings.
type StreamOptions struct {
	// MaxAge of the event log; 0 means DefaultMaxAge.
	MaxAge time.Duration
	// DLQMaxAge of dead letters; 0 keeps them until replayed or purged.
	DLQMaxAge time.Duration
}

// EnsureStreams creates or updates both streams. It is idempotent so that
// every worker can call it at start without coordination.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, o StreamOptions) error {
	for _, cfg := range streamConfigs(o) {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}

func streamConfigs(o StreamOptions) []jetstream.StreamConfig {
	if o.MaxAge == 0 {
		o.MaxAge = DefaultMaxAge
	}
	return []jetstream.StreamConfig{{
		Name:        Stream,
		Description: "guestflow onboarding events",
		Subjects:    []string{StreamSubjects},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      o.MaxAge,
		Duplicates:  DuplicateWindow,
	}, {
		Name:        DLQStream,
		Description: "guestflow dead letters, kept until replayed or purged",
		Subjects:    []string{DLQSubjects},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      o.DLQMaxAge,
		Duplicates:  DuplicateWindow,
	}}
}
