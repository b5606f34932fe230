package throttle

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// countingStore is a watchedStore that counts its writes.
type countingStore struct {
	*watchedStore
	puts atomic.Int64
}

func (s *countingStore) put(ctx context.Context, key string, v []byte, rev uint64) (uint64, error) {
	s.puts.Add(1)
	return s.watchedStore.put(ctx, key, v, rev)
}

// TestResourceUnitsArePacedOnlyWhileFilling: reads cost the bucket
// nothing while the resource units show no sign of filling; the first
// limit percentage any worker sees paces them for every worker, and
// IdleAfter without a sign leaves them unpaced again, until a 429 (which
// pauses them as ever) paces them once more.
func TestResourceUnitsArePacedOnlyWhileFilling(t *testing.T) {
	ctx := context.Background()
	ws := &watchedStore{memStore: newMemStore()}
	st := &countingStore{watchedStore: ws}
	clock := time.Unix(1_000_000, 0)
	now := func() time.Time { return clock }
	var a, b *Gate
	for _, g := range []**Gate{&a, &b} {
		*g = newGate(st, Options{MaxWait: time.Hour}, now)
		(*g).cache.start()
		ws.gates = append(ws.gates, *g)
	}
	// read books one read on g, a second after the last, and says
	// whether it took a slot of the resource units.
	read := func(g *Gate) bool {
		t.Helper()
		clock = clock.Add(time.Second)
		before := st.puts.Load()
		if _, _, ok, err := g.reserve(ctx, Read, 2, time.Hour); err != nil || !ok {
			t.Fatalf("booking a read: ok %v, %v", ok, err)
		}
		return st.puts.Load() > before
	}
	answer := func(g *Gate, sig Signal) {
		g.observe(ctx, Read, "", 2, sig)
	}

	for i := range 10 {
		if read([]*Gate{a, b}[i%2]) {
			t.Fatal("a read took a slot of resource units that never showed a sign of filling")
		}
	}
	answer(a, Signal{Percentage: 0.85})
	if !read(b) {
		t.Fatal("after a's limit percentage, b's read took no slot: the resource units are not paced for every worker")
	}
	// Quiet: a read a second, nothing shown, nobody waiting.
	quiet := time.Duration(IdleAfter) * DefaultInterval
	for start := clock; clock.Sub(start) < quiet+2*time.Second; {
		read(a)
	}
	if read(a) || read(b) {
		t.Fatalf("still paced after %s without a sign of filling", quiet)
	}
	answer(b, Signal{Throttled: true, RetryAfter: time.Second, Scope: ScopeResourceUnits})
	if d := b.pausedFor(scopeInfos[ScopeResourceUnits].pause); d <= 0 {
		t.Error("a 429 on the unpaced resource units paused nobody")
	}
	clock = clock.Add(time.Second)
	if !read(a) {
		t.Error("after a 429 the resource units are still not paced")
	}
	if r, _ := a.Rate(ctx, ScopeResourceUnits); r <= 0 || r >= a.ctl[ScopeResourceUnits].Start {
		t.Errorf("rate %v after a 429, want below the start of %v", r, a.ctl[ScopeResourceUnits].Start)
	}
}
