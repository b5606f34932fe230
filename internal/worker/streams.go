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
	// DefaultDLQMaxBytes bounds GUESTFLOW_DLQ at 1 GiB: a million dead
	// letters of a kilobyte, far more than anyone replays by hand, and a
	// small share of the 10 Gi volume deploy/nats-values.yaml gives each
	// server (a clustered stream with a byte limit is placed only on
	// servers with that much room).
	DefaultDLQMaxBytes = 1 << 30
)

// StreamOptions are the operator-tunable stream settings (nats.replicas
// and nats.dlqMaxBytes in the configuration). The zero value is a single
// server's streams with the default limits.
type StreamOptions struct {
	// MaxAge of the event log; 0 means DefaultMaxAge.
	MaxAge time.Duration
	// DLQMaxAge of dead letters; 0 keeps them until replayed or purged.
	DLQMaxAge time.Duration
	// DLQMaxBytes bounds the dead-letter stream, which then refuses new
	// dead letters (discard new) rather than dropping the oldest, which
	// nobody has replayed yet: a refused dead letter is retried and, in
	// the end, logged at Error and counted (see giveUp), where a dropped
	// one would vanish without a trace. 0 means DefaultDLQMaxBytes, -1 no
	// limit.
	DLQMaxBytes int64
	// Replicas is how many servers of a JetStream cluster keep each
	// stream and key-value bucket (0 means 1). A stream or bucket on
	// fewer is raised to it at start; one on more is left so (see
	// provision.Stream).
	Replicas int
}

// EventMaxAge is the event stream's MaxAge: MaxAge or DefaultMaxAge. The
// index keeps its keys as long.
func (o StreamOptions) EventMaxAge() time.Duration {
	if o.MaxAge == 0 {
		return DefaultMaxAge
	}
	return o.MaxAge
}

// dlqMaxBytes is the DLQ's byte limit as the server keeps it: -1 for none.
func (o StreamOptions) dlqMaxBytes() int64 {
	switch {
	case o.DLQMaxBytes == 0:
		return DefaultDLQMaxBytes
	case o.DLQMaxBytes < 0:
		return -1
	}
	return o.DLQMaxBytes
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
// contract has them. Their consumers are created without replicas of their
// own, so that they have the stream's (see consumerConfig).
func StreamConfigs(o StreamOptions) []jetstream.StreamConfig {
	o.MaxAge = o.EventMaxAge()
	return []jetstream.StreamConfig{{
		Name:        Stream,
		Description: "guestflow onboarding events",
		Subjects:    []string{StreamSubjects},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      o.MaxAge,
		Duplicates:  DuplicateWindow,
		Replicas:    o.Replicas,
	}, {
		Name:        DLQStream,
		Description: "guestflow dead letters, kept until replayed or purged",
		Subjects:    []string{DLQSubjects},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      o.DLQMaxAge,
		MaxBytes:    o.dlqMaxBytes(),
		Discard:     jetstream.DiscardNew,
		Duplicates:  DuplicateWindow,
		Replicas:    o.Replicas,
	}}
}
