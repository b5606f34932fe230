// Package memo is the steps' durable memory, a NATS key-value bucket: what a
// step did for an onboarding that it cannot ask Microsoft again. The invite
// step remembers its invitation (a redemption link cannot be read back from
// Graph, and inviting again would be a second invitation); the notify step
// remembers that it mailed. A redelivered input — after a lost ack, a crash
// or a replay — then repeats neither. It needs no server beyond the broker
// the workers already use.
package memo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/provision"
)

// Bucket is the key-value bucket's name.
const Bucket = "GUESTFLOW_MEMO"

// TTL is how long a record is kept after it was last written: 31 days, a
// day longer than the event stream GUESTFLOW keeps events (its MaxAge,
// worker.DefaultMaxAge).
//
// A record must outlive every event that can still be delivered to a step
// that reads it, or a redelivery would repeat what the record was kept to
// prevent. An event is delivered (and redelivered) only while the stream
// holds it, and a record is written while its step handles one of the
// onboarding's events, so 30 days from the write would cover that event.
// But the later events of the onboarding are stored after the write — the
// notify step checks the invite record against a role_assigned event
// stored minutes later, or hours later behind a backlog — and each lives
// 30 days from its own storing: the extra day covers a backlog of up to a
// day between the invite step and the last one. A step that finds no
// record after that falls back on what it can ask Microsoft: the invite
// step finds the user it would otherwise have remembered, the later steps
// verify a guest in the directory (a member of the tenant, whom only the
// record vouches for, is refused as identity_mismatch: publish a joined
// event for the person again).
//
// Without a TTL the bucket grew by a key or two per onboarding for ever.
const TTL = 31 * 24 * time.Hour

// Store is a memo backed by a JetStream key-value bucket.
type Store struct {
	js  jetstream.JetStream
	cfg jetstream.KeyValueConfig
	mu  sync.Mutex
	kv  jetstream.KeyValue
}

// Options say how to keep the bucket. The zero value is TTL on one server.
type Options struct {
	// TTL is how long a record is kept after it was last written; 0 means
	// TTL. Tests that watch records expire set less (the server refuses a
	// TTL below 100 ms).
	TTL time.Duration
	// Replicas is how many servers of a JetStream cluster keep the
	// bucket (0 means 1); see provision.KeyValue.
	Replicas int
}

// Open opens the bucket, creating it when it is absent, with records kept
// for o.TTL. History 1 and file storage: only the latest record matters,
// and it must survive a broker restart. A bucket created without a TTL
// (before guestflow set one) gets it: a bucket whose settings differ is put
// back to these (provision.KeyValue), and the server then expires the
// records older than the TTL.
func Open(ctx context.Context, js jetstream.JetStream, o Options) (*Store, error) {
	if o.TTL <= 0 {
		o.TTL = TTL
	}
	cfg := BucketConfig(o.TTL)
	cfg.Replicas = o.Replicas
	s := &Store{js: js, cfg: cfg}
	if _, err := s.open(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// BucketConfig is the bucket's configuration with records kept for ttl.
func BucketConfig(ttl time.Duration) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "guestflow: what each step did per onboarding (invitations, mails)",
		History:     1,
		Storage:     jetstream.FileStorage,
		TTL:         ttl,
	}
}

func (s *Store) open(ctx context.Context) (jetstream.KeyValue, error) {
	kv, _, err := provision.KeyValue(ctx, s.js, s.cfg)
	if err != nil {
		return nil, fmt.Errorf("memo: %w", err)
	}
	s.mu.Lock()
	s.kv = kv
	s.mu.Unlock()
	return kv, nil
}

// opTimeout bounds one read or write of the bucket, whatever the caller's
// deadline (a step's is minutes). A reply lost with a server — the
// bucket's leader killed while its replicas elect another — is never sent
// again, and nats.go would wait for it until that deadline, holding the
// input; failing after opTimeout lets the step be retried once the
// cluster has a leader again. Five seconds is nats.go's own timeout for a
// call without a deadline; an answer normally takes milliseconds. (A
// variable for the tests.)
var opTimeout = 5 * time.Second

// putTries is how many times Put writes a record the bucket did not
// answer for. A record is written after what it records was done (an
// invitation sent, a mail sent), and a step whose record is lost does it
// again on its retry: writing the same record again changes nothing, and
// four tries of opTimeout outlast a leader election (four to ten
// seconds).
const putTries = 4

// bucket runs op on the bucket, each call within opTimeout, re-creating the
// bucket once when it was deleted under the running worker: otherwise
// every step that keeps or checks a record would fail until a restart. The
// records are gone with it; the steps then fall back on what they can ask
// Microsoft.
func (s *Store) bucket(ctx context.Context, op func(context.Context, jetstream.KeyValue) error) error {
	s.mu.Lock()
	kv := s.kv
	s.mu.Unlock()
	try := func(kv jetstream.KeyValue) error {
		ctx, cancel := context.WithTimeout(ctx, opTimeout)
		defer cancel()
		return op(ctx, kv)
	}
	err := try(kv)
	if !gone(err) {
		return err
	}
	// A cluster without a leader says "no responders" too; the lookup
	// before re-creating must not wait for it longer than a read would.
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	kv, err = s.open(octx)
	cancel()
	if err != nil {
		return err
	}
	return try(kv)
}

// gone reports whether err says the bucket's stream does not exist.
func gone(err error) bool {
	return errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// Get loads what step recorded for onboardingID into v and reports whether
// there was a record.
func (s *Store) Get(ctx context.Context, step, onboardingID string, v any) (bool, error) {
	var e jetstream.KeyValueEntry
	err := s.bucket(ctx, func(ctx context.Context, kv jetstream.KeyValue) (err error) {
		e, err = kv.Get(ctx, key(step, onboardingID))
		return err
	})
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("memo: %w", err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return false, fmt.Errorf("memo: record %s: %w", e.Key(), err)
	}
	return true, nil
}

// Put records v for step and onboardingID. A write the bucket does not
// answer is tried again, up to putTries times: see putTries.
func (s *Store) Put(ctx context.Context, step, onboardingID string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("memo: %w", err)
	}
	for try := 1; ; try++ {
		err = s.bucket(ctx, func(ctx context.Context, kv jetstream.KeyValue) error {
			_, err := kv.Put(ctx, key(step, onboardingID), b)
			return err
		})
		if err == nil {
			return nil
		}
		if try == putTries || !unanswered(err) || ctx.Err() != nil {
			return fmt.Errorf("memo: %w", err)
		}
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("memo: %w", err)
		case <-t.C:
		}
	}
}

// unanswered reports whether err is a call the bucket did not answer: the
// reply lost, or nobody there to give one (a cluster electing a leader).
func unanswered(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || gone(err)
}

var plainID = regexp.MustCompile(`^[A-Za-z0-9_=-]{1,128}$`)

// key is "<step>.<id>", keeping ids readable where the key alphabet allows
// (UUIDs do) and hashing the rest, since event ids are any non-empty string.
func key(step, id string) string {
	if !plainID.MatchString(id) {
		sum := sha256.Sum256([]byte(id))
		id = "h_" + hex.EncodeToString(sum[:16])
	}
	return step + "." + id
}
