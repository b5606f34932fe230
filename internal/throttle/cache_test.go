package throttle

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// watchedStore is a memStore that counts its reads and, as the bucket's
// watch does, tells the gates' caches of every pacing key written, unless
// told to lose the notifications.
type watchedStore struct {
	*memStore
	gets  atomic.Int64
	gates []*Gate
	lose  bool
	// lag, when set, delivers the pacing keys' notifications that much
	// later, as a watch does a moment after the write.
	lag time.Duration
}

func (s *watchedStore) get(ctx context.Context, key string) ([]byte, uint64, error) {
	s.gets.Add(1)
	return s.memStore.get(ctx, key)
}

func (s *watchedStore) put(ctx context.Context, key string, v []byte, rev uint64) (uint64, error) {
	rev, err := s.memStore.put(ctx, key, v, rev)
	if err == nil && !s.lose && strings.HasPrefix(key, keyPace) {
		deliver := func() {
			for _, g := range s.gates {
				g.paceChanged(key, v, rev)
			}
		}
		if s.lag > 0 {
			time.AfterFunc(s.lag, deliver)
		} else {
			deliver()
		}
	}
	if err == nil && !s.lose && slotOfKey(key) {
		for _, g := range s.gates {
			g.cache.remember(key, v, rev)
			g.mail.notify()
		}
	}
	return rev, err
}

// watchedRate is the static write rate of watchedGates' gates.
const watchedRate = 50.0

// watchedGates returns n gates over one watchedStore, each with its cache
// open, on a clock that stands still.
func watchedGates(n int) (*watchedStore, []*Gate, func() time.Time) {
	st := &watchedStore{memStore: newMemStore()}
	clock := time.Unix(1_000_000, 0)
	now := func() time.Time { return clock }
	o := Options{Static: true, WriteRate: watchedRate, MaxWait: time.Hour}
	for range n {
		g := newGate(st, o, now)
		g.cache.start()
		st.gates = append(st.gates, g)
	}
	return st, st.gates, now
}

// bookAll books one write slot after another, alternating between the
// gates, and returns the slots' times.
func bookAll(t *testing.T, gates []*Gate, n int, now func() time.Time) []time.Time {
	t.Helper()
	var at []time.Time
	for i := range n {
		wait, _, ok, err := gates[i%len(gates)].reserve(context.Background(), Write, 1, time.Hour)
		if err != nil || !ok {
			t.Fatalf("booking %d: ok %v, %v", i, ok, err)
		}
		at = append(at, now().Add(wait))
	}
	return at
}

// TestBookingsReadTheWatchedState: with the watch open, a booking takes
// its scopes' state from the cache and costs only its compare-and-set;
// the slots two workers book are still one after the other at the rate.
func TestBookingsReadTheWatchedState(t *testing.T) {
	st, gates, now := watchedGates(2)
	at := bookAll(t, gates, 100, now)
	if gets := st.gets.Load(); gets > 1 {
		t.Errorf("%d reads of the bucket for 100 bookings, want at most the first", gets)
	}
	assertSpaced(t, at, watchedRate)
}

// TestAStaleCacheCostsARead: a worker whose cache missed another's
// bookings (a watch that lags) fails its compare-and-set, reads the key,
// and books after them, never on top of them.
func TestAStaleCacheCostsARead(t *testing.T) {
	st, gates, now := watchedGates(2)
	a, b := gates[0], gates[1]
	at := bookAll(t, []*Gate{a, b}, 10, now)
	st.lose = true // b's cache no longer hears of a's bookings
	at = append(at, bookAll(t, []*Gate{a}, 10, now)...)
	before := st.gets.Load()
	at = append(at, bookAll(t, []*Gate{b}, 1, now)...)
	if st.gets.Load() == before {
		t.Error("the stale booking read nothing from the bucket: it cannot have seen a's bookings")
	}
	assertSpaced(t, at, watchedRate)
}

// TestAConflictWaitsForTheWatch: a worker whose copy is a moment behind
// (the watch brings another's booking just after it) fails its
// compare-and-set and then books from the copy the watch brings, without
// reading the bucket.
func TestAConflictWaitsForTheWatch(t *testing.T) {
	st, gates, now := watchedGates(2)
	a, b := gates[0], gates[1]
	at := bookAll(t, []*Gate{a, b}, 10, now)
	st.lag = time.Millisecond
	before := st.gets.Load()
	for range 10 {
		at = append(at, bookAll(t, []*Gate{a}, 1, now)...)
		at = append(at, bookAll(t, []*Gate{b}, 1, now)...)
	}
	if gets := st.gets.Load() - before; gets != 0 {
		t.Errorf("%d reads of the bucket for 20 bookings that conflicted, want none: the watch brought the newer values", gets)
	}
	assertSpaced(t, at, watchedRate)
}

// assertSpaced checks that no two slots are closer than the rate allows.
func assertSpaced(t *testing.T, at []time.Time, rate float64) {
	t.Helper()
	slices.SortFunc(at, func(x, y time.Time) int { return x.Compare(y) })
	gap := time.Duration(float64(time.Second) / rate)
	for i := 1; i < len(at); i++ {
		if d := at[i].Sub(at[i-1]); d < gap-time.Microsecond {
			t.Fatalf("slots %d and %d are %s apart, want at least %s (%g/s)", i-1, i, d, gap, rate)
		}
	}
}
