package throttle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/metrics"
)

// MailConcurrency is how many sendMail calls Outlook takes at once: four
// per app and mailbox. guestflow sends from one mailbox (notify.sender),
// so this is four for the whole app, across every worker.
const MailConcurrency = 4

// mailLease bounds how long a slot is held by a worker that died holding
// it: past the shared HTTP client's timeout (60 s), no call can still be
// running under it.
const mailLease = 70 * time.Second

// mailSlots holds sendMail to MailConcurrency calls at once for the whole
// tenant, with one bucket key per slot (graph.mail.slot.0 to .3), each
// holding the lease of the call in it, if any, taken and given back by
// compare-and-set. A per-process share (one slot each for three replicas,
// say) would need every worker to know how many there are, and would
// leave slots idle while one replica has mail and the others none.
//
// A key per slot, read from the watch's copy (the pacing keys' cache),
// makes a mail cost two writes to the bucket, one to take a slot and one
// to give it back, and no read: a single key holding every lease, read
// before each change, cost five times that, most of it in conflicts
// between workers taking and giving back different slots at once.
//
// A worker waits for a free slot on the bucket's watch (follow wakes the
// waiters when a slot's key changes), polling as well in case an update is
// missed, for up to MaxWait, and is then handed back like any pacing
// wait.
type mailSlots struct {
	g *Gate

	once  sync.Once
	local chan struct{} // this process's share: never more than the tenant's

	mu      sync.Mutex
	changed chan struct{} // closed when a slot's key changes
}

// slotLease is the value of a slot's key: the lease of the call in it,
// or a free slot (Until 0, or past).
type slotLease struct {
	ID    string `json:"id,omitempty"`
	Until int64  `json:"until,omitempty"`
}

// slotKey is the bucket key of mail slot i.
func slotKey(i int) string { return keyMailSlot + strconv.Itoa(i) }

// slotOfKey says whether key is a mail slot's.
func slotOfKey(key string) bool { return strings.HasPrefix(key, keyMailSlot) }

// notify wakes the waiters: a slot's key changed.
func (m *mailSlots) notify() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.changed != nil {
		close(m.changed)
		m.changed = nil
	}
}

func (m *mailSlots) wait() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.changed == nil {
		m.changed = make(chan struct{})
	}
	return m.changed
}

// enter takes a slot, or fails with failure.Throttle after MaxWait; the
// returned func gives it back.
func (m *mailSlots) enter(ctx context.Context) (func(), error) {
	if m.g.ctl[ScopeMail].Static {
		return func() {}, nil
	}
	m.once.Do(func() { m.local = make(chan struct{}, MailConcurrency) })
	start := time.Now()
	deadline := time.NewTimer(m.g.o.MaxWait)
	defer deadline.Stop()
	select {
	case m.local <- struct{}{}:
	case <-deadline.C:
		return nil, m.busy(start)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	id := strconv.FormatUint(rand.Uint64(), 36)
	poll := time.Millisecond
	for {
		changed := m.wait()
		key, rev, ok, err := m.take(ctx, id)
		if err != nil {
			<-m.local
			return nil, err
		}
		if ok {
			if d := time.Since(start); d > time.Millisecond {
				waited(metrics.ScopeMail, d)
			}
			return func() { m.leave(key, rev) }, nil
		}
		t := time.NewTimer(poll + time.Duration(rand.Int64N(int64(poll))))
		select {
		case <-changed:
		case <-t.C:
			poll = min(2*poll, 50*time.Millisecond)
		case <-deadline.C:
			t.Stop()
			<-m.local
			return nil, m.busy(start)
		case <-ctx.Done():
			t.Stop()
			<-m.local
			return nil, ctx.Err()
		}
		t.Stop()
	}
}

func (m *mailSlots) busy(start time.Time) error {
	d := time.Second
	waited(metrics.ScopeMail, time.Since(start)+d)
	return failure.Throttle(fmt.Errorf("all %d of the mailbox's concurrent sendMail slots stayed taken for %s", MailConcurrency,
		time.Since(start).Round(time.Millisecond)), d)
}

// take leases a free slot under id, if there is one, and returns its key
// and the revision the lease was stored at.
func (m *mailSlots) take(ctx context.Context, id string) (string, uint64, bool, error) {
	first := rand.IntN(MailConcurrency) // spread the workers over the slots
	for n := range MailConcurrency {
		key := slotKey((first + n) % MailConcurrency)
		for {
			l, rev, err := m.load(ctx, key)
			if err != nil {
				return "", 0, false, err
			}
			now := m.g.now().UnixNano()
			if l.Until > now {
				break // taken: try the next slot
			}
			rev, err = m.save(ctx, key, slotLease{ID: id, Until: now + int64(mailLease)}, rev)
			if err == nil {
				return key, rev, true, nil
			}
			if !errors.Is(err, errConflict) {
				return "", 0, false, err
			}
			// Another worker changed the slot first: read it again.
		}
	}
	return "", 0, false, nil
}

// leave gives the slot under key back, on a context of its own: the
// call's may have ended, and a slot not given back is lost until its lease
// ends. rev is the revision the lease was stored at: a slot that another
// worker took meanwhile (the lease ended) is left to it.
func (m *mailSlots) leave(key string, rev uint64) {
	defer func() { <-m.local }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := m.save(ctx, key, slotLease{}, rev); err == nil {
		m.notify() // wake this process's waiters without the watch's round trip
	}
}

// load reads a slot's lease, from the watch's copy when there is one.
func (m *mailSlots) load(ctx context.Context, key string) (slotLease, uint64, error) {
	b, rev, err := m.g.read(ctx, key)
	if err != nil {
		return slotLease{}, rev, err
	}
	var l slotLease
	if b != nil && json.Unmarshal(b, &l) != nil {
		return slotLease{}, rev, nil // damaged: free, and overwritten by revision
	}
	return l, rev, nil
}

// save stores a slot's lease if its key is still at rev.
func (m *mailSlots) save(ctx context.Context, key string, l slotLease, rev uint64) (uint64, error) {
	b, err := json.Marshal(l)
	if err != nil {
		return 0, err
	}
	return m.g.write(ctx, key, b, rev)
}
