package throttle

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowStore is a memStore whose every operation takes a round trip, and
// which counts its writes.
type slowStore struct {
	*memStore
	rtt  time.Duration
	puts atomic.Int64
}

func (s *slowStore) get(ctx context.Context, key string) ([]byte, uint64, error) {
	time.Sleep(s.rtt)
	return s.memStore.get(ctx, key)
}

func (s *slowStore) put(ctx context.Context, key string, v []byte, rev uint64) (uint64, error) {
	time.Sleep(s.rtt)
	s.puts.Add(1)
	return s.memStore.put(ctx, key, v, rev)
}

// TestOneBookingServesTheQueue: a worker's callers queued behind a booking
// are booked together, so that the bucket sees a write per batch, not one
// per call, while the calls keep to the static rate they are paced at.
func TestOneBookingServesTheQueue(t *testing.T) {
	st := &slowStore{memStore: newMemStore(), rtt: 2 * time.Millisecond}
	const rate = 200.0
	g := newGate(st, Options{Static: true, WriteRate: rate, InviteRate: rate, MaxWait: 5 * time.Second}, time.Now)
	const callers, calls = 32, 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	var at []time.Time
	start := time.Now()
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range calls {
				if err := g.Acquire(context.Background(), Write); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				at = append(at, time.Now())
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	n := callers * calls
	if len(at) != n {
		t.Fatalf("%d calls admitted, want %d", len(at), n)
	}
	// A call per slot: n slots at rate take (n-1)/rate at least.
	if took, least := time.Since(start), time.Duration(float64(n-1)/rate*float64(time.Second)); took < least*95/100 {
		t.Errorf("%d calls admitted in %s: faster than %g/s allows (%s)", n, took, rate, least)
	}
	// Static paces only writes (Write charges the write scope and, not
	// paced, resource units): one put per booking.
	if puts := st.puts.Load(); puts > int64(n)/4 {
		t.Errorf("%d bucket writes for %d calls: bookings are not batched", puts, n)
	} else {
		t.Logf("%d bucket writes for %d calls", puts, n)
	}
}

// TestCallersThatGiveUpNeverHang: callers whose contexts end, or who wait
// longer than MaxWait behind the queue, while bookings for them are in
// flight, all return, with a booking or an error, within their bounds.
func TestCallersThatGiveUpNeverHang(t *testing.T) {
	st := &slowStore{memStore: newMemStore(), rtt: time.Millisecond}
	g := newGate(st, Options{Static: true, WriteRate: 50, InviteRate: 50, MaxWait: 150 * time.Millisecond}, time.Now)
	var wg sync.WaitGroup
	var booked, failed atomic.Int64
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%7)*20*time.Millisecond)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- g.Acquire(ctx, Write) }()
			select {
			case err := <-done:
				if err != nil {
					failed.Add(1)
				} else {
					booked.Add(1)
				}
			case <-time.After(5 * time.Second):
				t.Error("a caller did not return within 5s")
			}
		}()
	}
	wg.Wait()
	if booked.Load() == 0 || failed.Load() == 0 {
		t.Errorf("%d booked, %d gave up: want some of each", booked.Load(), failed.Load())
	}
}
