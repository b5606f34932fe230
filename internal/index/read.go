package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrNoIndex means the bucket does not exist: no worker that keeps the
// index has run against this broker.
var ErrNoIndex = errors.New("no index: the key-value bucket " + Bucket + " does not exist")

// Reader looks queries up in the index.
type Reader struct {
	kv      jetstream.KeyValue
	created time.Time
}

// OpenReader opens the bucket, never creating it.
func OpenReader(ctx context.Context, js jetstream.JetStream) (*Reader, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, ErrNoIndex
	}
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	r := &Reader{kv: kv}
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
		r.created = bs.StreamInfo().Created
	}
	return r, nil
}

// Created is when the bucket was created, by the broker's clock: messages
// stored before may be missing from it (they were published before any
// worker kept the index, or handled by workers that did not). The zero
// time when the broker did not say.
func (r *Reader) Created() time.Time { return r.created }

// Lookup returns the sequences the index holds for query, as
// timeline.Matches reads a query: those of the onboarding whose id is
// query and, for a query with an @, those of the onboardings of that
// address, compared case-insensitively. Found is false when the index has
// no key for the query at all. The sequences may include messages that
// have left the stream since, and messages of another person (a hash
// collision): check what they hold.
func (r *Reader) Lookup(ctx context.Context, query string) (seqs []uint64, found bool, err error) {
	query = strings.TrimSpace(query)
	keys := []string{onboardingKey(query)}
	if strings.Contains(query, "@") {
		var p person
		ok, err := r.get(ctx, emailKey(strings.ToLower(query)), &p)
		if err != nil {
			return nil, false, err
		}
		found = ok
		for _, o := range p.Onboardings {
			if o.Key != keys[0] {
				keys = append(keys, o.Key)
			}
		}
	}
	for _, k := range keys {
		var o onboarding
		ok, err := r.get(ctx, k, &o)
		if err != nil {
			return nil, false, err
		}
		found = found || ok
		seqs = append(seqs, o.Seqs...)
	}
	return seqs, found, nil
}

// get reads key into v; a value that does not decode counts as none.
func (r *Reader) get(ctx context.Context, key string, v any) (bool, error) {
	e, err := r.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("index %s: %w", key, err)
	}
	return json.Unmarshal(e.Value(), v) == nil, nil
}
