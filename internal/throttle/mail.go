package throttle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
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
// tenant, with slots leased in one bucket key (graph.mail.slots): a JSON
// list of at most four leases, each taken and given back by
// compare-and-set. A per-process share (one slot each for three replicas,
// say) would need every worker to know how many there are, and would
// leave slots idle while one replica has mail and the others none; the
// leases cost two round trips a mail, which Outlook's own latency dwarfs.
//
// A worker waits for a free slot on the bucket's watch (follow wakes the
// waiters when the key changes), polling as well in case an update is
// missed, for up to MaxWait, and is then handed back like any pacing
// wait.
type mailSlots struct {
	g *Gate

	once  sync.Once
	local chan struct{} // this process's share: never more than the tenant's

	mu      sync.Mutex
	changed chan struct{} // closed when the key changes
}

type mailLeases struct {
	Leases []mailLeaseEntry `json:"leases"`
}

type mailLeaseEntry struct {
	ID    string `json:"id"`
	Until int64  `json:"until"`
}

// notify wakes the waiters: the slots key changed.
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
		ok, err := m.take(ctx, id)
		if err != nil {
			<-m.local
			return nil, err
		}
		if ok {
			if d := time.Since(start); d > time.Millisecond {
				waited(metrics.ScopeMail, d)
			}
			return func() { m.leave(id) }, nil
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

// take leases a slot under id if one is free.
func (m *mailSlots) take(ctx context.Context, id string) (bool, error) {
	for {
		l, rev, err := m.load(ctx)
		if err != nil {
			return false, err
		}
		now := m.g.now().UnixNano()
		live := l.Leases[:0]
		for _, e := range l.Leases {
			if e.Until > now {
				live = append(live, e)
			}
		}
		if len(live) >= MailConcurrency {
			return false, nil
		}
		l.Leases = append(live, mailLeaseEntry{ID: id, Until: now + int64(mailLease)})
		err = m.save(ctx, l, rev)
		if !errors.Is(err, errConflict) {
			return err == nil, err
		}
	}
}

// leave gives id's slot back, on a context of its own: the call's may have
// ended, and a slot not given back is lost until its lease ends.
func (m *mailSlots) leave(id string) {
	defer func() { <-m.local }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		l, rev, err := m.load(ctx)
		if err != nil {
			return
		}
		kept := l.Leases[:0]
		for _, e := range l.Leases {
			if e.ID != id {
				kept = append(kept, e)
			}
		}
		l.Leases = kept
		if err := m.save(ctx, l, rev); !errors.Is(err, errConflict) {
			m.notify() // wake this process's waiters without the watch's round trip
			return
		}
	}
}

func (m *mailSlots) load(ctx context.Context) (mailLeases, uint64, error) {
	b, rev, err := m.g.st.get(ctx, keyMailSlots)
	var l mailLeases
	if err != nil || b == nil {
		return l, rev, err
	}
	if json.Unmarshal(b, &l) != nil {
		return mailLeases{}, rev, nil // damaged: start afresh
	}
	return l, rev, nil
}

func (m *mailSlots) save(ctx context.Context, l mailLeases, rev uint64) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	_, err = m.g.st.put(ctx, keyMailSlots, b, rev)
	return err
}
