package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/provision"
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

// EnsureStreams makes both streams exist with the contract's settings:
// it looks each up, and creates or updates only one that is absent or
// differs (see provision.Stream), so that a worker whose NATS user may
// only look streams up starts against streams provisioned for it. It is
// idempotent so that every worker can call it at start without
// coordination.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, o StreamOptions) error {
	for _, cfg := range StreamConfigs(o) {
		if _, _, err := provision.Stream(ctx, js, cfg); err != nil {
			return fmt.Errorf("stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}

// StreamConfigs are the event stream and the dead-letter stream as the
// contract has them.
func StreamConfigs(o StreamOptions) []jetstream.StreamConfig {
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
