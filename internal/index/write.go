package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/provision"
)

// Writer adds messages to the index. Several workers add to the same keys
// (each step adds the event it publishes and the input it receives), so
// every write is an update against the revision read, tried again on a
// conflict.
type Writer struct {
	js        jetstream.JetStream
	cfg       jetstream.KeyValueConfig
	recreated func()

	mu sync.Mutex
	kv jetstream.KeyValue
}

// Options say how to keep the index.
type Options struct {
	// TTL is how long a key is kept after its last write: the event
	// stream's MaxAge, when every message a key names has left the stream
	// too (they were all stored before the write). Required.
	TTL time.Duration
	// Replicas is how many servers of a JetStream cluster keep the
	// bucket (0 means 1); see provision.KeyValue.
	Replicas int
	// Recreated, when set, is told that the bucket was found deleted
	// under the running writer and created again.
	Recreated func()
}

// updateTries bounds the retries of one key's update against writers that
// keep changing it first. Two writers of one key are one onboarding's
// neighbouring steps or one address's simultaneous onboardings; a few
// tries settle them.
const updateTries = 8

// BucketConfig is the bucket's configuration with keys kept for ttl.
func BucketConfig(ttl time.Duration) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "guestflow: the GUESTFLOW sequences of each onboarding id and address, for guestflow status",
		History:     1,
		Storage:     jetstream.FileStorage,
		TTL:         ttl,
	}
}

// Open opens the bucket, creating it when it is absent and putting its
// settings back to these (file storage, history 1, the TTL) when they
// differ (provision.KeyValue): a bucket left with other settings, or
// created before it had a TTL, gets them.
func Open(ctx context.Context, js jetstream.JetStream, o Options) (*Writer, error) {
	if o.TTL <= 0 {
		return nil, errors.New("index: a TTL is required")
	}
	cfg := BucketConfig(o.TTL)
	cfg.Replicas = o.Replicas
	kv, _, err := provision.KeyValue(ctx, js, cfg)
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	return &Writer{js: js, cfg: cfg, recreated: o.Recreated, kv: kv}, nil
}

// Add files the message stored at seq under its onboarding id and its
// address, as Identify reads them. Adding a message twice changes
// nothing, so every step may add what it receives without knowing whether
// the step before added it when publishing it. A message with neither an
// onboarding id nor an address is not filed: no query finds it but a scan.
func (w *Writer) Add(ctx context.Context, seq uint64, subject string, header map[string][]string, body []byte) error {
	id := Identify(subject, header, body)
	if id.OnboardingID == "" && id.Email == "" {
		return nil
	}
	ok := onboardingKey(id.OnboardingID)
	err := w.update(ctx, ok, func(b []byte) ([]byte, bool) {
		var v onboarding
		_ = json.Unmarshal(b, &v) // a value that does not decode starts over
		if !v.add(seq) {
			return nil, false
		}
		return mustJSON(v), true
	})
	if err != nil || id.Email == "" {
		return err
	}
	return w.update(ctx, emailKey(id.Email), func(b []byte) ([]byte, bool) {
		var v person
		_ = json.Unmarshal(b, &v)
		if !v.add(ok, seq) {
			return nil, false
		}
		return mustJSON(v), true
	})
}

// update applies change to key's value (nil when there is none) until it
// is stored against the revision it was read at, or change says there is
// nothing to change.
func (w *Writer) update(ctx context.Context, key string, change func([]byte) ([]byte, bool)) error {
	for range updateTries {
		err := w.bucket(ctx, func(kv jetstream.KeyValue) error {
			var old []byte
			var rev uint64
			e, err := kv.Get(ctx, key)
			switch {
			case errors.Is(err, jetstream.ErrKeyNotFound):
			case err != nil:
				return err
			default:
				old, rev = e.Value(), e.Revision()
			}
			b, changed := change(old)
			if !changed {
				return nil
			}
			if rev == 0 {
				_, err = kv.Create(ctx, key, b)
			} else {
				_, err = kv.Update(ctx, key, b, rev)
			}
			return err
		})
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			if err != nil {
				return fmt.Errorf("index %s: %w", key, err)
			}
			return nil
		}
	}
	return fmt.Errorf("index %s: changed by another writer %d times in a row", key, updateTries)
}

// bucket runs op on the bucket, creating it again once when it was
// deleted under the running writer. Only a lookup that finds it absent
// creates it, as for the lease bucket: a restarting broker says "no
// responders" for a moment too.
func (w *Writer) bucket(ctx context.Context, op func(jetstream.KeyValue) error) error {
	w.mu.Lock()
	kv := w.kv
	w.mu.Unlock()
	err := op(kv)
	if !gone(err) {
		return err
	}
	kv, err = w.js.KeyValue(ctx, Bucket)
	created := false
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = w.js.CreateKeyValue(ctx, w.cfg)
		created = err == nil
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = w.js.KeyValue(ctx, Bucket) // another writer was first
		}
	}
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.kv = kv
	w.mu.Unlock()
	if created && w.recreated != nil {
		w.recreated()
	}
	return op(kv)
}

// gone reports whether err says the bucket's stream is not there.
func gone(err error) bool {
	return errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // the values are slices of numbers and hex strings
	}
	return b
}
