package throttle

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guestflow/guestflow/internal/failure"
)

// TestMailSlotsHoldFourAtOnceAcrossWorkers: three workers sharing one store
// never have more than four sendMails in flight between them, and every
// one gets through.
func TestMailSlotsHoldFourAtOnceAcrossWorkers(t *testing.T) {
	t.Run("read from the bucket", func(t *testing.T) {
		st := newMemStore()
		var gs []*Gate
		for range 3 {
			gs = append(gs, newGate(st, Options{MaxWait: 5 * time.Second}, time.Now))
		}
		holdFour(t, gs)
	})
	t.Run("read from the watch", func(t *testing.T) {
		st := &watchedStore{memStore: newMemStore()}
		for range 3 {
			g := newGate(st, Options{MaxWait: 5 * time.Second}, time.Now)
			g.cache.start()
			st.gates = append(st.gates, g)
		}
		holdFour(t, st.gates)
	})
}

// TestAMailCostsTwoWrites: with the watch's copy of the slots, a mail
// takes a slot with one write to the bucket and gives it back with
// another, reading nothing.
func TestAMailCostsTwoWrites(t *testing.T) {
	ws := &watchedStore{memStore: newMemStore()}
	st := &countingStore{watchedStore: ws}
	var gs []*Gate
	for range 2 {
		g := newGate(st, Options{MaxWait: time.Second}, time.Now)
		g.cache.start()
		ws.gates = append(ws.gates, g)
		gs = append(gs, g)
	}
	// The first mail of each slot reads its absent key once.
	for range 2 * MailConcurrency {
		for _, g := range gs {
			leave, err := g.mail.enter(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			leave()
		}
	}
	gets, puts := ws.gets.Load(), st.puts.Load()
	const mails = 20
	for i := range mails {
		leave, err := gs[i%2].mail.enter(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		leave()
	}
	if g, p := ws.gets.Load()-gets, st.puts.Load()-puts; g != 0 || p != 2*mails {
		t.Errorf("%d mails read the bucket %d times and wrote it %d, want 0 and %d", mails, g, p, 2*mails)
	}
}

// holdFour sends 36 mails through gs at once and checks that no more than
// four were in flight between them, and that every one got through.
func holdFour(t *testing.T, gs []*Gate) {
	var inFlight, most, done atomic.Int32
	var wg sync.WaitGroup
	for i := range 36 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			leave, err := gs[i%3].mail.enter(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			n := inFlight.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(3 * time.Millisecond)
			inFlight.Add(-1)
			leave()
			done.Add(1)
		}()
	}
	wg.Wait()
	if m := most.Load(); m > MailConcurrency || m < 2 {
		t.Errorf("%d sendMails at once, want at most %d (and more than one)", m, MailConcurrency)
	}
	if done.Load() != 36 {
		t.Errorf("%d of 36 got through", done.Load())
	}
}

// TestMailSlotOfADeadWorkerIsFreedByItsLease: slots taken and never given
// back (a worker died) hold the others back until their leases end, and
// no longer.
func TestMailSlotOfADeadWorkerIsFreedByItsLease(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	g := newGate(newMemStore(), Options{MaxWait: 100 * time.Millisecond}, clock)
	for i := range MailConcurrency {
		if _, _, ok, err := g.mail.take(context.Background(), "dead"+string(rune('a'+i))); !ok || err != nil {
			t.Fatalf("slot %d: %v %v", i, ok, err)
		}
	}
	_, err := g.mail.enter(context.Background())
	if v := failure.Classify(err); v.Reason != failure.Throttled {
		t.Fatalf("a fifth sendMail: %v, want it handed back as throttled", err)
	}
	mu.Lock()
	now = now.Add(mailLease + time.Second)
	mu.Unlock()
	leave, err := g.mail.enter(context.Background())
	if err != nil {
		t.Fatalf("after the leases ended: %v", err)
	}
	leave()
}
