package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LeaseBucket holds one lease per input being processed or waiting for its
// next try.
const LeaseBucket = "GUESTFLOW_LEASES"

// leases keep two deliveries of the same input from running a step at the
// same time, and count the input's failed attempts.
//
// The broker normally prevents parallel deliveries with AckWait and
// in-progress acks, but not across its own restart: it then redelivers
// inputs that a worker is still busy with. Every step checks before it acts
// (is the license assigned? is the role there?), and two checks at once
// would both act. A lease is a key per input holding its expiry, renewed
// with the in-progress acks; a lease whose worker died expires after
// AckWait, as the broker's own delivery does.
//
// The same key counts failures, because the broker's delivery count cannot:
// it also counts the redeliveries spent waiting for Graph's budget, the
// ones turned away by a live lease and the ones a broker restart causes.
// None of those is a failed attempt, and counting them would dead-letter
// inputs and stretch their backoff under mere load. A failed attempt leaves
// the key behind, expired, with the count; a finished input deletes it.
// Taking over a lease whose worker died counts as a failure too, and as a
// death: an input whose workers died MaxAttempts times is dead-lettered
// without running again, since it may be what kills them.
type leases struct {
	kv  jetstream.KeyValue
	ttl time.Duration
	now func() time.Time
}

func openLeases(ctx context.Context, js jetstream.JetStream, ttl time.Duration, now func() time.Time) (*leases, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LeaseBucket,
		Description: "guestflow: inputs being processed or retried, so a redelivery does not run beside them, and their failed attempts",
		History:     1,
		// Leases outlive a broker restart (that is their point); keys
		// left by killed workers, or by inputs nobody retried, are
		// dropped after a day.
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
	// failures is how many earlier attempts at this input failed;
	// deaths is how many of them ended with their worker.
	failures, deaths int
}

// state is a lease key's value: "<expiry unix nanos> <failures> <deaths>".
// An expiry of 0 means released after a failure, waiting for the next try.
type state struct {
	until            int64
	failures, deaths int
}

func (s state) encode() []byte {
	return fmt.Appendf(nil, "%d %d %d", s.until, s.failures, s.deaths)
}

// decodeState reads a value; one it cannot read counts as an expired lease
// with no failures, so a corrupt key never blocks an input.
func decodeState(b []byte) state {
	f := strings.Fields(string(b))
	f = append(f, "0", "0", "0")
	var s state
	s.until, _ = strconv.ParseInt(f[0], 10, 64)
	s.failures, _ = strconv.Atoi(f[1])
	s.deaths, _ = strconv.Atoi(f[2])
	return s
}

// acquire takes the lease on key, or reports false when a live lease of
// another delivery holds it.
func (l *leases) acquire(ctx context.Context, key string) (*lease, bool, error) {
	rev, err := l.kv.Create(ctx, key, l.held(state{}))
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
	s := decodeState(e.Value())
	if s.until > l.now().UnixNano() {
		return nil, false, nil
	}
	if s.until != 0 {
		// Expired while held: its worker died mid-attempt.
		s.failures++
		s.deaths++
	}
	// Take it over unless someone else just did.
	rev, err = l.kv.Update(ctx, key, l.held(s), e.Revision())
	if err != nil {
		return nil, false, nil
	}
	return &lease{key: key, rev: rev, failures: s.failures, deaths: s.deaths}, true, nil
}

// renew extends a held lease; failing to is harmless for the holder.
func (l *leases) renew(ctx context.Context, ls *lease) {
	if rev, err := l.kv.Update(ctx, ls.key, l.held(state{failures: ls.failures, deaths: ls.deaths}), ls.rev); err == nil {
		ls.rev = rev
	}
}

// release ends a held lease once its input is acked or dead-lettered.
func (l *leases) release(ctx context.Context, ls *lease) {
	_ = l.kv.Delete(ctx, ls.key, jetstream.LastRevision(ls.rev))
}

// failed ends a held lease after a failed attempt, recording the count
// for the next delivery. Should the write fail, the key expires as if its
// worker had died, which counts the failure all the same.
func (l *leases) failed(ctx context.Context, ls *lease, failures int) {
	_, _ = l.kv.Update(ctx, ls.key, state{failures: failures, deaths: ls.deaths}.encode(), ls.rev)
}

// free ends a held lease after a delivery that was not an attempt (it
// waited for budget), keeping the count as it was.
func (l *leases) free(ctx context.Context, ls *lease) {
	if ls.failures == 0 && ls.deaths == 0 {
		l.release(ctx, ls)
		return
	}
	l.failed(ctx, ls, ls.failures)
}

// held is s as held by a live delivery until the lease's time is up.
func (l *leases) held(s state) []byte {
	s.until = l.now().Add(l.ttl).UnixNano()
	return s.encode()
}
