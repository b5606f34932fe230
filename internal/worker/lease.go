package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/provision"
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
// AckWait, as the broker's own delivery does. A step abandoned at its
// timeout or on shutdown gives its lease up while its goroutine may still
// run (see runner.call): the one case where two runs can overlap, and one
// more reason why steps check before they act.
//
// The same key counts failures, because the broker's delivery count cannot:
// it also counts the redeliveries spent waiting for Graph's budget, the
// ones turned away by a live lease, the ones handed back when a worker
// shuts down and the ones a broker restart causes. None of those is a
// failed attempt, and counting them would dead-letter inputs and stretch
// their backoff under mere load. A failed attempt leaves
// the key behind, expired, with the count; a finished input deletes it.
// Taking over a lease whose worker died counts as a failure too, and as a
// death: an input whose workers died MaxFailures times is dead-lettered
// without running again, since it may be what kills them.
//
// A third count, unstored, is how many times the input's dead letter could
// not be stored: after DeadLetterTries the input is terminated without one
// instead of coming back for ever.
//
// The bucket is shared state an operator may delete under running
// workers: every write that finds it gone creates it again and writes
// once more (the keys are gone with it, so a lease is created rather than
// updated). Its counts are lost with it, and start over.
type leases struct {
	js  jetstream.JetStream
	cfg jetstream.KeyValueConfig
	ttl atomic.Int64 // time.Duration; the consumer's AckWait, which a re-created consumer may change
	now func() time.Time
	// recreated is told when the bucket was deleted and created again.
	recreated func(what string)

	mu sync.Mutex
	kv jetstream.KeyValue
}

// LeaseKeyTTL is how long a lease key is kept after its last write. A
// finished input deletes its key, but a deletion is a marker the bucket
// keeps like a value, one per input ever processed; the key of an input
// nobody comes back for (one that aged out of the stream while it waited)
// stays too. A day is far beyond the longest wait between two writes of a
// key whose input is still being retried: the backoff's two minutes, the
// throttle and sync deadlines' quarter of an hour. Workers that all stay
// stopped for longer lose the failure counts of the inputs they were
// retrying, which then start over.
const LeaseKeyTTL = 24 * time.Hour

// LeaseBucketConfig is the lease bucket's configuration.
func LeaseBucketConfig() jetstream.KeyValueConfig { return leaseConfig }

var leaseConfig = jetstream.KeyValueConfig{
	Bucket:      LeaseBucket,
	Description: "guestflow: inputs being processed or retried, so a redelivery does not run beside them, and their failed attempts",
	History:     1,
	// Leases outlive a broker restart (that is their point).
	Storage: jetstream.FileStorage,
	TTL:     LeaseKeyTTL,
}

// openLeases opens the bucket, creating it when it is absent and putting
// its settings back to leaseConfig when they differ (provision.KeyValue),
// so one created without the TTL gets it, and the server expires its old
// keys.
func openLeases(ctx context.Context, js jetstream.JetStream, replicas int, ttl time.Duration, now func() time.Time) (*leases, error) {
	cfg := leaseConfig
	cfg.Replicas = replicas
	return openLeasesWith(ctx, js, cfg, ttl, now)
}

// openLeasesWith is openLeases with the bucket's settings, for tests that
// watch keys expire.
func openLeasesWith(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, ttl time.Duration, now func() time.Time) (*leases, error) {
	kv, _, err := provision.KeyValue(ctx, js, cfg)
	if err != nil {
		return nil, fmt.Errorf("leases: %w", err)
	}
	l := &leases{js: js, cfg: cfg, kv: kv, now: now}
	l.setTTL(ttl)
	return l, nil
}

func (l *leases) setTTL(d time.Duration) { l.ttl.Store(int64(d)) }

func (l *leases) bucket() jetstream.KeyValue {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.kv
}

// reopen creates the bucket again if it is gone. Only a lookup that finds
// it absent creates it, and never with an update: a broker restarting
// says "no responders" for a moment too, and must not lose its leases.
func (l *leases) reopen(ctx context.Context) error {
	kv, err := l.js.KeyValue(ctx, LeaseBucket)
	created := false
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = l.js.CreateKeyValue(ctx, l.cfg)
		created = err == nil
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = l.js.KeyValue(ctx, LeaseBucket) // another worker was first
		}
	}
	if err != nil {
		return fmt.Errorf("leases: %w", err)
	}
	l.mu.Lock()
	l.kv = kv
	l.mu.Unlock()
	if created && l.recreated != nil {
		l.recreated("key-value bucket " + LeaseBucket)
	}
	return nil
}

// create creates key, creating the bucket again first if it is gone.
func (l *leases) create(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := l.bucket().Create(ctx, key, value)
	if missing(err) {
		if err := l.reopen(ctx); err != nil {
			return 0, err
		}
		rev, err = l.bucket().Create(ctx, key, value)
	}
	return rev, err
}

// write updates a held lease; should the bucket be gone, the key went
// with it, and is created again in the new bucket.
func (l *leases) write(ctx context.Context, ls *lease, value []byte) (uint64, error) {
	rev, err := l.bucket().Update(ctx, ls.key, value, ls.rev)
	if missing(err) {
		if err := l.reopen(ctx); err != nil {
			return 0, err
		}
		rev, err = l.bucket().Create(ctx, ls.key, value)
	}
	return rev, err
}

// lease is one held lease.
type lease struct {
	key string
	rev uint64
	// failures is how many earlier attempts at this input failed;
	// deaths is how many of them ended with their worker; unstored is how
	// many times its dead letter could not be stored.
	failures, deaths, unstored int
}

func (ls *lease) state() state {
	return state{failures: ls.failures, deaths: ls.deaths, unstored: ls.unstored}
}

// state is a lease key's value: "<expiry unix nanos> <failures> <deaths>
// <unstored>". An expiry of 0 means released after a failure, waiting for
// the next try. Values written before unstored existed have three fields.
type state struct {
	until                      int64
	failures, deaths, unstored int
}

func (s state) encode() []byte {
	return fmt.Appendf(nil, "%d %d %d %d", s.until, s.failures, s.deaths, s.unstored)
}

// decodeState reads a value; one it cannot read counts as an expired lease
// with no failures, so a corrupt key never blocks an input.
func decodeState(b []byte) state {
	f := strings.Fields(string(b))
	f = append(f, "0", "0", "0", "0")
	var s state
	s.until, _ = strconv.ParseInt(f[0], 10, 64)
	s.failures, _ = strconv.Atoi(f[1])
	s.deaths, _ = strconv.Atoi(f[2])
	s.unstored, _ = strconv.Atoi(f[3])
	return s
}

// acquire takes the lease on key, or reports false when a live lease of
// another delivery holds it.
func (l *leases) acquire(ctx context.Context, key string) (*lease, bool, error) {
	rev, err := l.create(ctx, key, l.held(state{}))
	if err == nil {
		return &lease{key: key, rev: rev}, true, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, false, fmt.Errorf("leases: %w", err)
	}
	kv := l.bucket()
	e, err := kv.Get(ctx, key)
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
	rev, err = kv.Update(ctx, key, l.held(s), e.Revision())
	if err != nil {
		return nil, false, nil
	}
	return &lease{key: key, rev: rev, failures: s.failures, deaths: s.deaths, unstored: s.unstored}, true, nil
}

// renew extends a held lease; failing to is harmless for the holder.
func (l *leases) renew(ctx context.Context, ls *lease) {
	if rev, err := l.write(ctx, ls, l.held(ls.state())); err == nil {
		ls.rev = rev
	}
}

// release ends a held lease once its input is acked or dead-lettered.
// A bucket found gone is created again for the next input; the key is
// gone with it.
func (l *leases) release(ctx context.Context, ls *lease) {
	if err := l.bucket().Delete(ctx, ls.key, jetstream.LastRevision(ls.rev)); missing(err) {
		_ = l.reopen(ctx)
	}
}

// failed ends a held lease after a failed attempt, recording the count
// for the next delivery. Should the write fail, the key expires as if its
// worker had died, which counts the failure all the same.
func (l *leases) failed(ctx context.Context, ls *lease, failures int) {
	s := ls.state()
	s.failures = failures
	_, _ = l.write(ctx, ls, s.encode())
}

// free ends a held lease after a delivery that was not a failed attempt
// (it waited for budget, or was handed back on shutdown), keeping the
// counts as they were.
func (l *leases) free(ctx context.Context, ls *lease) {
	if ls.failures == 0 && ls.deaths == 0 && ls.unstored == 0 {
		l.release(ctx, ls)
		return
	}
	l.failed(ctx, ls, ls.failures)
}

// held is s as held by a live delivery until the lease's time is up.
func (l *leases) held(s state) []byte {
	s.until = l.now().Add(time.Duration(l.ttl.Load())).UnixNano()
	return s.encode()
}
