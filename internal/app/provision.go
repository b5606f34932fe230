package app

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/index"
	"github.com/guestflow/guestflow/internal/memo"
	"github.com/guestflow/guestflow/internal/provision"
	"github.com/guestflow/guestflow/internal/throttle"
	"github.com/guestflow/guestflow/internal/worker"
)

// Provisioned is one stream or key-value bucket that Provision made sure
// of, and what it did.
type Provisioned struct {
	Kind   string // "stream" or "bucket"
	Name   string
	Action provision.Action
}

// Provision makes the streams and key-value buckets the workers use exist
// with the settings the workers give them, as `guestflow provision` does
// before least-privilege workers start: a worker looks them up, and needs
// the permission to create or update one only when it is absent or its
// settings differ. It reports what it did to each, up to the first
// failure. o must be what the workers are given (worker.Options.Streams):
// every stream and bucket is kept on o.Replicas servers, and the workers
// would otherwise find them different and need to update them.
func Provision(ctx context.Context, js jetstream.JetStream, o worker.StreamOptions) ([]Provisioned, error) {
	var done []Provisioned
	for _, cfg := range worker.StreamConfigs(o) {
		_, a, err := provision.Stream(ctx, js, cfg)
		if err != nil {
			return done, fmt.Errorf("stream %s: %w", cfg.Name, err)
		}
		done = append(done, Provisioned{"stream", cfg.Name, a})
	}
	for _, cfg := range []jetstream.KeyValueConfig{
		memo.BucketConfig(memo.TTL),
		worker.LeaseBucketConfig(),
		// The index keeps keys as long as the event stream keeps events.
		index.BucketConfig(o.EventMaxAge()),
		throttle.BucketConfig(),
	} {
		cfg.Replicas = o.Replicas
		_, a, err := provision.KeyValue(ctx, js, cfg)
		if err != nil {
			return done, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
		}
		done = append(done, Provisioned{"bucket", cfg.Bucket, a})
	}
	return done, nil
}
