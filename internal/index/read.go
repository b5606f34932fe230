package index

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
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
// address, compared case-insensitively; at most an address's newest
// MaxOnboardings onboardings, and each one's newest MaxEvents sequences.
// Found is false when the index has no key for the query at all. The
// sequences may include messages that have left the stream since, and
// messages of another person (a hash collision): check what they hold.
//
// A lookup is two listings of keys by prefix (one for an onboarding id),
// each reading the keys of the layout before too.
func (r *Reader) Lookup(ctx context.Context, query string) (seqs []uint64, found bool, err error) {
	query = strings.TrimSpace(query)
	own := hash(query)
	onboardings := []string{own}
	if strings.Contains(query, "@") {
		var ok bool
		ok, onboardings, err = r.address(ctx, hash(strings.ToLower(query)), own)
		if err != nil {
			return nil, false, err
		}
		found = ok
	}
	filters := make([]string, 0, 2*len(onboardings))
	for _, o := range onboardings {
		filters = append(filters, onboardingPrefix+o, onboardingPrefix+o+".*")
	}
	byOnboarding := map[string][]uint64{}
	err = r.list(ctx, filters, func(key string, value []byte) {
		o, seq, current := strings.Cut(strings.TrimPrefix(key, onboardingPrefix), ".")
		if !current { // the layout before
			var v legacyOnboarding
			if json.Unmarshal(value, &v) != nil {
				return // a value that does not decode counts as none
			}
			byOnboarding[o] = append(byOnboarding[o], v.Seqs...)
			found = true
			return
		}
		n, err := strconv.ParseUint(seq, 10, 64)
		if err != nil {
			return // no key this package writes
		}
		byOnboarding[o] = append(byOnboarding[o], n)
		found = true
	})
	if err != nil {
		return nil, false, err
	}
	for _, o := range onboardings {
		s := byOnboarding[o]
		slices.Sort(s)
		s = slices.Compact(s)
		seqs = append(seqs, s[max(0, len(s)-MaxEvents):]...)
	}
	return seqs, found, nil
}

// address returns the onboardings of the address hashed a, newest first
// and at most MaxOnboardings of them, after own, the query's own
// onboarding, which is always looked up; and whether the index has a key
// for the address at all.
func (r *Reader) address(ctx context.Context, a, own string) (bool, []string, error) {
	latest := map[string]uint64{}
	note := func(o string, seq uint64) { latest[o] = max(latest[o], seq) }
	found := false
	err := r.list(ctx, []string{addressPrefix + a, addressPrefix + a + ".*"}, func(key string, value []byte) {
		o, ok := strings.CutPrefix(key, addressPrefix+a+".")
		if !ok { // the layout before
			var v legacyPerson
			if json.Unmarshal(value, &v) != nil {
				return
			}
			for _, ref := range v.Onboardings {
				note(strings.TrimPrefix(ref.Key, onboardingPrefix), ref.Seq)
			}
		} else {
			seq, _ := strconv.ParseUint(string(value), 10, 64) // a value that does not parse sorts oldest
			note(o, seq)
		}
		found = true
	})
	if err != nil {
		return false, nil, err
	}
	delete(latest, own)
	newest := make([]string, 0, len(latest))
	for o := range latest {
		newest = append(newest, o)
	}
	slices.SortFunc(newest, func(x, y string) int { return cmp.Or(cmp.Compare(latest[y], latest[x]), strings.Compare(x, y)) })
	return found, append([]string{own}, newest[:min(len(newest), MaxOnboardings)]...), nil
}

// list calls f with each key matching filters, and its value, as the
// bucket holds them now.
func (r *Reader) list(ctx context.Context, filters []string, f func(key string, value []byte)) error {
	// WatchFiltered writes the subjects over the filters it is given.
	w, err := r.kv.WatchFiltered(ctx, slices.Clone(filters), jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("index %s: %w", filters[0], err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("index %s: the listing ended early", filters[0])
			}
			if e == nil {
				return nil // all that was there when it began
			}
			f(e.Key(), e.Value())
		case <-ctx.Done():
			return fmt.Errorf("index %s: %w", filters[0], ctx.Err())
		}
	}
}

// legacyOnboarding is the value of an onboarding id's key in the layout
// before, "o.<hash>".
type legacyOnboarding struct {
	Seqs []uint64 `json:"seqs"`
}

// legacyPerson is the value of an address's key in the layout before,
// "e.<hash>": the onboardings' keys ("o.<hash>"), each with the sequence
// of its first message.
type legacyPerson struct {
	Onboardings []struct {
		Key string `json:"key"`
		Seq uint64 `json:"seq"`
	} `json:"onboardings"`
}
