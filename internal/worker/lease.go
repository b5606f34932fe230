package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LeaseBucket holds one lease per input being processed.
const LeaseBucket = "GUESTFLOW_LEASES"

// leases keep two deliveries of the same input from running a step at the
// same time. The broker normally prevents that with AckWait and in-progress
// acks, but not across its own restart: it then redelivers inputs that a
// worker is still busy with. Every step checks before it acts (is the
// license assigned? is the role there?), and two checks at once would both
// act. A lease is a key per input holding its expiry, renewed with the
// in-progress acks and deleted when the delivery ends; a lease whose worker
// died expires after AckWait, as the broker's own delivery does.
type leases struct {
	kv  jetstream.KeyValue
	ttl time.Duration
	now func() time.Time
}

func openLeases(ctx context.Context, js jetstream.JetStream, ttl time.Duration, now func() time.Time) (*leases, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LeaseBucket,
		Description: "guestflow: inputs being processed, so a redelivery does not run beside them",
		History:     1,
		// Leases outlive a broker restart (that is their point); keys
		// left by killed workers are dropped after a day.
		Storage: jetstream.FileStorage,
		TTL:     24 * time.Hour,
	})
	if err != nil {
		return nil, fmt.Errorf("leases: %w", err)
	}
	return &leases{kv: kv, ttl: ttl, now: now}, nil
}

// lease is one held lease.
type lease struct {
	key string
	rev uint64
}

// acquire takes the lease on key, or reports false when a live lease of
// another delivery holds it.
func (l *leases) acquire(ctx context.Context, key string) (*lease, bool, error) {
	val := l.expiry()
	rev, err := l.kv.Create(ctx, key, val)
	if err == nil {
		return &lease{key: key, rev: rev}, true, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, false, fmt.Errorf("leases: %w", err)
	}
	e, err := l.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, false, nil // released in between: the caller tries again later
	}
	if err != nil {
		return nil, false, fmt.Errorf("leases: %w", err)
	}
	until, err := strconv.ParseInt(string(e.Value()), 10, 64)
	if err == nil && until > l.now().UnixNano() {
		return nil, false, nil
	}
	// Expired: its worker died. Take it over unless someone else just did.
	rev, err = l.kv.Update(ctx, key, val, e.Revision())
	if err != nil {
		return nil, false, nil
	}
	return &lease{key: key, rev: rev}, true, nil
}

// renew extends a held lease; failing to is harmless for the holder.
func (l *leases) renew(ctx context.Context, ls *lease) {
	if rev, err := l.kv.Update(ctx, ls.key, l.expiry(), ls.rev); err == nil {
		ls.rev = rev
	}
}

// release ends a held lease.
func (l *leases) release(ctx context.Context, ls *lease) {
	_ = l.kv.Delete(ctx, ls.key, jetstream.LastRevision(ls.rev))
}

func (l *leases) expiry() []byte {
	return []byte(strconv.FormatInt(l.now().Add(l.ttl).UnixNano(), 10))
}
