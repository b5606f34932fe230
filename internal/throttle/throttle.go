// Package throttle shares the tenant's Microsoft Graph budgets among every
// worker of a tenant — replicas of a step and the different steps alike —
// through a NATS key-value bucket, so that no extra server is needed.
// Dataverse's service protection 429s are shared the same way, per
// instance.
//
// Graph budgets identity writes per app and tenant and per tenant,
// invitations per tenant, the resource units of every identity call per
// app and tenant, and Outlook's sendMail per app and mailbox (with at most
// four at once). Workers that each retry on their own turn overload into a
// storm of 429s. The Gate, one per tenant in effect:
//
//   - paces every scope (writes, invitations, resource units, mail) with
//     GCRA ("virtual scheduling") over a shared theoretical arrival time
//     that workers advance by compare-and-set, so the tenant-wide rate holds
//     whatever the number of replicas;
//   - finds each scope's rate instead of being told it: an AIMD controller
//     (aimd.go) raises it while calls succeed and Graph's
//     x-ms-throttle-limit-percentage stays low and lowers it on a 429, the
//     rate kept in the same shared key, so all workers act as one client.
//     A configured rate is only a ceiling. (Options.Static keeps the fixed
//     rates of old, for comparison.);
//   - when Graph answers 429 anyway, records Retry-After in the bucket for
//     the scope the answer names, and every worker stops spending that
//     scope until then, instead of each learning it from a 429 of its own;
//   - holds sendMail to Outlook's four calls at once with slots leased in
//     the bucket (mail.go);
//   - when a Dataverse instance answers 429 (its service protection limits
//     count per app user and instance, whichever worker calls), makes
//     every worker stop calling that instance until its Retry-After, as
//     Microsoft asks clients to.
//
// A short wait for a slot is slept in place (it is pacing, measured in
// milliseconds); a longer one is returned as failure.Throttle so that the
// runtime hands the message back to the broker with that delay. Both count
// in guestflow_throttle_wait_seconds_total, by scope.
package throttle

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/metrics"
	"github.com/guestflow/guestflow/internal/provision"
)

// Bucket is the key-value bucket holding the shared budget state.
const Bucket = "GUESTFLOW_THROTTLE"

// Keys in the bucket, all below graph. and dataverse. (the two prefixes the
// steps' NATS permissions name). The pacing keys hold a JSON paceState
// each; the pause keys the time until which a scope's calls, or a
// Dataverse instance's, are paused, as Unix nanoseconds. The pacing keys
// are not graph.writes and graph.invitations, which held a bare arrival
// time before the pacer adapted: workers of both kinds in one tenant (a
// rolling upgrade) then pace apart, rather than misreading each other's
// keys, and still share graph.pause.
const (
	keyPace           = "graph.pace."
	keyWrites         = keyPace + "writes"
	keyInvites        = keyPace + "invitations"
	keyResourceUnits  = keyPace + "ru"
	keyMail           = keyPace + "mail"
	keyMailSlot       = "graph.mail.slot." // and the slot: 0 to MailConcurrency-1
	keyPause          = "graph.pause"      // writes; the other scopes' are graph.pause.<scope>
	keyDataversePause = "dataverse.*.pause"
)

// Options configure a Gate.
type Options struct {
	// WriteRate caps identity writes per second for the whole tenant and
	// InviteRate invitations; 0 is no cap for writes, and for invitations
	// inviteCeilingShare of Microsoft's 150 per 5 s. The adaptive pacer finds the
	// rates below the caps. With Static, they are the rates (0: not paced).
	WriteRate, InviteRate float64
	// Static paces writes and invitations at exactly WriteRate and
	// InviteRate, and resource units and mail not at all: the fixed pacer
	// guestflow had before it adapted, kept as a baseline for the
	// benchmark. 429 pauses are shared either way.
	Static bool
	// MaxWait is the longest pacing wait slept in place; longer waits are
	// handed back to the broker. Default DefaultMaxWait.
	MaxWait time.Duration
	// Interval is how often each scope's rate may move, tenant-wide.
	// Default DefaultInterval.
	Interval time.Duration
	// Replicas is how many servers of a JetStream cluster keep the
	// bucket (0 means 1); see provision.KeyValue.
	Replicas int
}

// DefaultMaxWait is how long a call waits in place for its slot before
// its input is handed back to the broker. Long enough for a worker's
// queue at a budget's rate (a step's callers at the invitations' 29 a
// second take about 2 s): an input handed back loses its place to the
// inputs delivered meanwhile and comes back at its delay, jitter added,
// so that the last inputs of a batch trail the others by the delay. An
// input that waits keeps its message with in-progress acks, and its wait
// ends with the drain.
const DefaultMaxWait = 10 * time.Second

// DefaultInterval is how often the adaptive pacer moves a rate: short, so
// that the rate is found within seconds of a start or of a neighbour
// stopping, and long enough for a window of a second to show a change.
const DefaultInterval = 500 * time.Millisecond

// startShare is the share of Microsoft's published rate a scope starts
// from before it has learnt anything: what guestflow paced at before it
// adapted (a tenth kept for other applications and for clock skew).
const startShare = 0.9

// inviteCeilingShare is the share of Microsoft's published invitation
// rate the adaptive pacer goes up to, unless told a ceiling
// (Options.InviteRate). The invitation manager's budget is the same for
// every tenant and other apps only take from it, so no rate above
// Microsoft's is worth probing for; and slow start's overshoot would fill
// a window of 5 s long before the percentage shows it, then meet the 429s
// of a window that refills at the pace it was filled. Not quite at the
// rate: a window of 150 reads full one call from its limit, and a call
// that arrives late is then a 429, a Retry-After of a whole second for
// everyone.
const inviteCeilingShare = 0.98

// Gate is one worker's view of the tenant's shared Graph budget.
type Gate struct {
	st  store
	o   Options
	ctl [numScopes]Controller
	// pauses are local copies of the pause keys (key → *atomic.Int64, Unix
	// ns), kept by a watch so that checking one costs no round trip.
	pauses sync.Map
	now    func() time.Time

	// sig attributes percentages to scopes; pending holds what this
	// worker saw of each scope since it last took a slot of it, folded
	// into the shared state with the next one.
	sig     signals
	mu      sync.Mutex
	pending [numScopes]pending
	// cache holds the pacing keys, kept by the watch (see paceCache).
	cache paceCache
	// costs remembers each route's resource units (ruKey → int).
	costs sync.Map
	mail  *mailSlots
	// steady caches whether each scope's shared state was out of slow
	// start when this worker last read it.
	steady [numScopes]atomic.Bool
	// active says whether each lazy scope is paced, as its shared state
	// last said (see pacing); waking that this worker is making it so.
	active, waking [numScopes]atomic.Bool
	// queues hold each kind's callers in this worker, and turns say
	// whose it is to book for them (see acquire).
	queues [numKinds]queue
	turns  [numKinds]chan struct{}
	// credits are slots booked ahead while their scopes were idle, for
	// this worker's next callers of each kind (see book); only the
	// holder of the kind's turn touches them.
	credits [numKinds][]credit
}

type pending struct {
	pct     float64
	limited bool
	at      int64 // when pct was seen, Unix ns
}

// BucketConfig is the bucket's configuration.
func BucketConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "guestflow: the tenant's shared Graph write budget",
		History:     1,
		// File storage, although the state is worth little after a broker
		// restart: a memory bucket would not exist after one at all, and
		// every write would fail until a worker re-created it.
		Storage: jetstream.FileStorage,
	}
}

// Open opens the bucket, creating it when it is absent (provision.KeyValue),
// and starts following pauses until ctx ends.
func Open(ctx context.Context, js jetstream.JetStream, o Options) (*Gate, error) {
	cfg := BucketConfig()
	cfg.Replicas = o.Replicas
	kv, _, err := provision.KeyValue(ctx, js, cfg)
	if err != nil {
		return nil, fmt.Errorf("throttle: %w", err)
	}
	g := newGate(kvStore{kv}, o, time.Now)
	// Bookings read the pacing keys from the watch and from the bucket
	// only when another worker overtook that copy: read one now, so that
	// a worker without the permission says so at start, not at its first
	// contended booking.
	if _, _, err := g.st.get(ctx, keyWrites); err != nil {
		return nil, fmt.Errorf("throttle: reading the pacing state: %w", provision.Denied(js.Conn(), err))
	}
	w, err := g.watch(ctx, kv)
	if err != nil {
		return nil, fmt.Errorf("throttle: watching the pauses: %w", provision.Denied(js.Conn(), err))
	}
	go g.follow(ctx, kv, w)
	return g, nil
}

// newGate is a Gate over st on the clock now, without the pause watch
// (Open's, or a test's raisePause).
func newGate(st store, o Options, now func() time.Time) *Gate {
	if o.MaxWait <= 0 {
		o.MaxWait = DefaultMaxWait
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	g := &Gate{st: st, o: o, now: now}
	for s := ScopeWrites; s < numScopes; s++ {
		pub := scopeInfos[s].published
		c := Controller{Start: startShare * pub, Min: pub / 100, Interval: o.Interval}
		switch s {
		case ScopeWrites:
			c.Ceiling = o.WriteRate
		case ScopeInvitations:
			c.Ceiling = o.InviteRate
			if c.Ceiling == 0 {
				c.Ceiling = inviteCeilingShare * pub
			}
		case ScopeResourceUnits, ScopeMail:
			c.Lazy = true
		}
		if o.Static {
			c = Controller{Static: true}
			switch s {
			case ScopeWrites:
				c.Start = o.WriteRate
			case ScopeInvitations:
				c.Start = o.InviteRate
			}
		}
		g.ctl[s] = c
	}
	g.mail = &mailSlots{g: g}
	for k := range g.turns {
		g.turns[k] = make(chan struct{}, 1)
	}
	return g
}

// paced says whether scope s is paced at all: the static pacer paces
// only the scopes it has a rate for.
func (g *Gate) paced(s Scope) bool {
	return !g.ctl[s].Static || g.ctl[s].Start > 0
}

// pacing says whether calls take slots of scope s now.
//
// Writes and invitations are what an onboarding spends, and bind often:
// they are always paced. Resource units and mail are lazy: a booking of
// them is a compare-and-set of a key every call of the tenant contends
// for (most of the pacer's broker messages when they were always paced),
// and their budgets are rarely near (an onboarding spends a tenth of the
// resource units a second that its writes allow; Outlook's 10,000 mails
// in 10 minutes are more than the write budget onboards). So they are
// paced from their first sign of filling (a limit percentage over 0.8,
// or a 429), which leaves a fifth of the window to slow down in, until
// they have shown none for IdleAfter. A 429 on a scope not paced yet
// costs what it always costs: its Retry-After, for everyone.
func (g *Gate) pacing(s Scope) bool {
	return g.paced(s) && (!g.ctl[s].Lazy || g.active[s].Load())
}

// paceChanged takes in a pacing key's value at rev, from the watch (nil:
// deleted).
func (g *Gate) paceChanged(key string, v []byte, rev uint64) {
	g.cache.remember(key, v, rev)
	if s, ok := scopeOfKey(key); ok && g.ctl[s].Lazy {
		g.sawState(s, v != nil, decodeState(v))
	}
}

// sawState notes what the shared state st of lazy scope s says of its
// pacing; present is false when its key is absent (or deleted).
func (g *Gate) sawState(s Scope, present bool, st paceState) {
	if g.ctl[s].Lazy {
		g.active[s].Store(present && !st.Idle)
	}
}

// activate paces lazy scope s for every worker, from slow start, unless
// it is paced already: it showed a sign of filling.
func (g *Gate) activate(ctx context.Context, s Scope) error {
	if !g.ctl[s].Lazy || g.active[s].Load() || !g.waking[s].CompareAndSwap(false, true) {
		return nil
	}
	defer g.waking[s].Store(false)
	for {
		st, rev, err := g.load(ctx, s)
		if err != nil || g.active[s].Load() {
			return err
		}
		g.ctl[s].wake(&st, g.now().UnixNano())
		if err := g.save(ctx, s, st, rev); !errors.Is(err, errConflict) {
			return err
		}
	}
}

// watch follows every pause key, the mail slots and the pacing keys.
func (g *Gate) watch(ctx context.Context, kv jetstream.KeyValue) (jetstream.KeyWatcher, error) {
	w, err := kv.WatchFiltered(ctx, []string{keyPause, keyPause + ".*", keyDataversePause, keyMailSlot + "*", keyPace + "*"})
	if err == nil {
		g.cache.start()
	}
	return w, err
}

// follow keeps the local pauses in step with the bucket, so checking it costs
// no round trip. A watch can end with the connection (a broker restart);
// it is then opened again.
func (g *Gate) follow(ctx context.Context, kv jetstream.KeyValue, w jetstream.KeyWatcher) {
	for {
		g.drain(ctx, w)
		g.cache.stop()
		_ = w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			var err error
			if w, err = g.watch(ctx, kv); err == nil {
				break
			}
		}
	}
}

// drain applies updates until the watch or ctx ends.
func (g *Gate) drain(ctx context.Context, w jetstream.KeyWatcher) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil { // end of the initial values
				continue
			}
			v := e.Value()
			if e.Operation() != jetstream.KeyValuePut {
				v = nil // deleted
			}
			if slotOfKey(e.Key()) {
				g.cache.remember(e.Key(), v, e.Revision())
				g.mail.notify()
				continue
			}
			if strings.HasPrefix(e.Key(), keyPace) {
				g.paceChanged(e.Key(), v, e.Revision())
				continue
			}
			if until, err := strconv.ParseInt(string(e.Value()), 10, 64); err == nil {
				g.raisePause(e.Key(), until)
			}
		}
	}
}

func (g *Gate) pauseOf(key string) *atomic.Int64 {
	p, _ := g.pauses.LoadOrStore(key, new(atomic.Int64))
	return p.(*atomic.Int64)
}

func (g *Gate) raisePause(key string, until int64) {
	p := g.pauseOf(key)
	for {
		cur := p.Load()
		if until <= cur || p.CompareAndSwap(cur, until) {
			return
		}
	}
}

// pausedFor reports how long calls under key must still wait, without
// jitter, or zero.
func (g *Gate) pausedFor(key string) time.Duration {
	now := g.now()
	until := time.Unix(0, g.pauseOf(key).Load())
	if !until.After(now) {
		return 0
	}
	return until.Sub(now)
}

// paused reports how long calls under key must still wait, with jitter, or
// zero.
func (g *Gate) paused(key string) time.Duration {
	d := g.pausedFor(key)
	return d + jitter(d)
}

// scopePause is the longest pause among the scopes of kind k, and the
// scope it is for.
func (g *Gate) scopePause(k Kind) (time.Duration, Scope) {
	var d time.Duration
	var which Scope
	for _, s := range charges[k] {
		if p := g.pausedFor(scopeInfos[s].pause); p > d {
			d, which = p, s
		}
	}
	return d, which
}

// Acquire waits for budget for one request of kind k, or returns a
// failure.Throttle error saying how long to wait when that is longer than
// MaxWait or a scope the request spends is paused. A resource-unit cost
// is taken as 1; the Transport knows better. SendMail's concurrency slot
// is the Transport's to take, not Acquire's.
func (g *Gate) Acquire(ctx context.Context, k Kind) error {
	return g.acquire(ctx, k, 1)
}

// horizon is how far ahead a slot is booked: the callers of a kind queue
// in each worker (queues), and the one whose turn it is books, once the
// next slot is this close. Slots booked far ahead (up to MaxWait, as the
// pacer once did) would keep their times whatever the rate does
// meanwhile, so that a change of rate took MaxWait to count: too slow for
// slow start, and a decrease that does not bite until the window is
// overrun.
func (g *Gate) horizon() time.Duration {
	return min(100*time.Millisecond, g.o.Interval/4)
}

// maxBatch bounds the callers one booking serves.
const maxBatch = 64

// ticket is one caller of acquire in the queue of its kind.
type ticket struct {
	ru int
	// done receives the caller's booking once the booker has made it.
	done chan booking
	// leaving is set by a caller that stopped waiting (MaxWait behind
	// the queue, or its context ended) while its ticket was being
	// booked: the booker answers it instead of queueing it again.
	leaving atomic.Bool
}

// booking is a ticket's answer: how long until its slot starts and the
// scope that sets it, when it was booked (Unix ns, for invalidated), or
// why there is none.
type booking struct {
	wait   time.Duration
	scope  Scope
	booked int64
	err    error
}

// queue holds one kind's callers in this worker, oldest first.
type queue struct {
	mu      sync.Mutex
	waiting []*ticket
}

func (q *queue) add(t *ticket) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.waiting = append(q.waiting, t)
}

// remove takes t out of the queue and reports whether it was there: not
// taken by a booker.
func (q *queue) remove(t *ticket) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.removeLocked(t)
}

// removeLocked is remove with q.mu held.
func (q *queue) removeLocked(t *ticket) bool {
	i := slices.Index(q.waiting, t)
	if i < 0 {
		return false
	}
	q.waiting = slices.Delete(q.waiting, i, i+1)
	return true
}

// take takes up to n of the oldest tickets out of the queue.
func (q *queue) take(n int) []*ticket {
	q.mu.Lock()
	defer q.mu.Unlock()
	n = min(n, len(q.waiting))
	out := slices.Clone(q.waiting[:n])
	q.waiting = slices.Delete(q.waiting, 0, n)
	return out
}

// giveBack puts tickets taken but not booked back at the front, in their
// order, answering those whose callers left meanwhile with left's error.
// Both look at leaving under the queue's lock, so a caller leaving while
// its ticket is out is either found in the queue or answered here.
func (q *queue) giveBack(ts []*ticket, left func() error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var back []*ticket
	for _, t := range ts {
		if t.leaving.Load() {
			t.done <- booking{err: left()}
			continue
		}
		back = append(back, t)
	}
	q.waiting = append(back, q.waiting...)
}

// leaveQueue marks t as leaving and takes it out of the queue; false when
// a booker has it.
func (q *queue) leaveQueue(t *ticket) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	t.leaving.Store(true)
	return q.removeLocked(t)
}

// acquire waits for budget for one request of kind k costing ru resource
// units.
//
// A worker's callers of a kind queue, and the one holding the kind's turn
// books the slots of as many queued callers as start within the horizon,
// in one compare-and-set of each scope's shared state: under load, one
// round trip to the bucket serves many calls, so that pacing costs little
// CPU however many calls a second it paces. Each caller then sleeps until
// its own slot.
func (g *Gate) acquire(ctx context.Context, k Kind, ru int) error {
	if k == Free || k >= numKinds {
		return nil
	}
	if err := g.pausedErr(k); err != nil {
		return err
	}
	start := time.Now()
	deadline := time.NewTimer(g.o.MaxWait)
	defer deadline.Stop()
	t := &ticket{ru: ru, done: make(chan booking, 1)}
	q := &g.queues[k]
	q.add(t)
	turn := g.turns[k]
	var b booking
	for got := false; !got; {
		select {
		case b = <-t.done:
			got = true
		case turn <- struct{}{}:
			select {
			case b = <-t.done:
				// Booked by the previous holder meanwhile.
				<-turn
				got = true
			default:
				b, got = g.book(ctx, k, t, start)
				<-turn
			}
		case <-deadline.C:
			if b, got = g.leave(q, t, func() error { return g.queued(k) }); !got {
				return b.err
			}
		case <-ctx.Done():
			if b, got = g.leave(q, t, ctx.Err); !got {
				return b.err
			}
		}
	}
	if b.err != nil {
		return b.err
	}
	if b.wait > 0 {
		if err := g.sleep(ctx, scopeInfos[b.scope].metric, b.wait); err != nil {
			return err
		}
	}
	// A pause or a decrease since the slot was booked gave it up:
	// Retry-After is for everyone, and a slot booked at the old rate would
	// overload the budget the decrease is for.
	if g.invalidated(k, b.booked) && time.Since(start) < g.o.MaxWait {
		return g.acquire(ctx, k, ru)
	}
	return g.pausedErr(k)
}

// queued is the failure.Throttle of a caller that waited MaxWait behind
// its worker's queue: handed back, to come again later.
func (g *Gate) queued(k Kind) error {
	d := g.o.MaxWait
	scope := charges[k][len(charges[k])-1]
	waited(scopeInfos[scope].metric, d+jitter(d))
	return failure.Throttle(fmt.Errorf("the tenant's Graph %s budget is taken for the next %s", scope, d), d+jitter(d))
}

// leave takes t out of the queue with err's error as its answer. When a booker
// has t already, it waits for the booking (a round trip or two away) and
// reports got: the slot is booked, and the caller should use it, unless
// the booker answered err because the caller left.
func (g *Gate) leave(q *queue, t *ticket, err func() error) (booking, bool) {
	if q.leaveQueue(t) {
		return booking{err: err()}, false
	}
	b := <-t.done
	return b, b.err == nil
}

// book books slots for the oldest callers of kind k, batch by batch,
// until own's is booked; the caller holds the kind's turn, and started
// waiting at start. Callers in a batch that fail all get the error: it is
// about the budget they share (a scope taken for longer than MaxWait) or
// the bucket.
func (g *Gate) book(ctx context.Context, k Kind, own *ticket, start time.Time) (booking, bool) {
	q := &g.queues[k]
	left := func() error { return g.queued(k) }
	for {
		if time.Since(start) >= g.o.MaxWait && q.remove(own) {
			// Booking for the callers ahead took all its time.
			return booking{err: g.queued(k)}, true
		}
		batch := q.take(maxBatch)
		if len(batch) == 0 {
			// own was answered or left meanwhile.
			select {
			case b := <-own.done:
				return b, true
			default:
				return booking{}, false
			}
		}
		if err := g.pausedErr(k); err != nil {
			answer(batch, booking{err: err})
		} else if batch = g.spend(k, batch); len(batch) > 0 {
			rus := make([]int, len(batch))
			for i, t := range batch {
				rus[i] = t.ru
			}
			booked := g.now().UnixNano()
			from := g.horizon() / 2
			waits, scope, n, err := g.reserveBatch(ctx, k, rus, from, g.horizon(), true)
			if n > len(batch) {
				// Slots booked ahead for callers to come.
				for i := len(batch); i < n; i++ {
					g.credits[k] = append(g.credits[k], credit{start: booked + int64(waits[i]), ru: rus[len(rus)-1], booked: booked})
				}
				n = len(batch)
			}
			switch {
			case err != nil:
				answer(batch, booking{err: err})
			case n == 0:
				// Not within the horizon yet: sleep until it is, keeping
				// the turn, with the callers back in the queue (they may
				// leave meanwhile).
				q.giveBack(batch, left)
				if err := g.sleep(ctx, scopeInfos[scope].metric, waits[0]-from); err != nil {
					q.remove(own)
					return booking{err: err}, true
				}
				continue
			default:
				for i, t := range batch[:n] {
					t.done <- booking{wait: waits[i], scope: scope, booked: booked}
				}
				q.giveBack(batch[n:], left)
			}
		}
		select {
		case b := <-own.done:
			return b, true
		default:
		}
	}
}

// credit is a slot of every scope of a kind, booked ahead.
type credit struct {
	// start is when the slot starts, and booked when it was booked,
	// Unix ns; ru the resource units it holds.
	start, booked int64
	ru            int
}

// spend answers the callers of batch that this worker's credits can
// serve, oldest first, and returns the others. Credits that a pause or a
// decrease gave up (invalidated), or whose time is more than a horizon
// past, are dropped: they are budget nobody used.
func (g *Gate) spend(k Kind, batch []*ticket) []*ticket {
	cs := g.credits[k]
	if len(cs) == 0 {
		return batch
	}
	now := g.now().UnixNano()
	for len(cs) > 0 && (cs[0].start < now-int64(g.horizon()) || g.invalidated(k, cs[0].booked)) {
		cs = cs[1:]
	}
	rest := batch[:0:0]
	for _, t := range batch {
		if len(cs) == 0 || cs[0].ru < t.ru {
			rest = append(rest, t)
			continue
		}
		c := cs[0]
		cs = cs[1:]
		t.done <- booking{wait: time.Duration(max(c.start-now, 0)), scope: charges[k][len(charges[k])-1], booked: c.booked}
	}
	g.credits[k] = cs
	return rest
}

func answer(ts []*ticket, b booking) {
	for _, t := range ts {
		t.done <- b
	}
}

// pausedErr is the failure.Throttle of a paused scope of kind k, or nil.
func (g *Gate) pausedErr(k Kind) error {
	d, s := g.scopePause(k)
	if d <= 0 {
		return nil
	}
	d += jitter(d)
	waited(scopeInfos[s].metric, d)
	return failure.Throttle(fmt.Errorf("graph %ss are paused for %s after a 429", s, d.Round(time.Millisecond)), d)
}

// invalidated reports whether a scope of kind k was paused or slowed down
// after booked (Unix ns): its pause key was raised since.
func (g *Gate) invalidated(k Kind, booked int64) bool {
	for _, s := range charges[k] {
		if g.pauseOf(scopeInfos[s].pause).Load() > booked {
			return true
		}
	}
	return false
}

// invalidate tells every worker that the slots of s booked until now are
// given up, by raising its pause key to now: a pause that is already over,
// which the watch brings to every worker.
func (g *Gate) invalidate(ctx context.Context, s Scope) error {
	return g.pause(ctx, scopeInfos[s].pause, 0)
}

// sleep sleeps d in place, counting it under scope's metric.
func (g *Gate) sleep(ctx context.Context, metric string, d time.Duration) error {
	start := time.Now()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		waited(metric, d)
		return nil
	case <-ctx.Done():
		waited(metric, time.Since(start))
		return ctx.Err()
	}
}

// waited counts d in guestflow_throttle_wait_seconds_total: a pacing wait
// slept in place, or the wait a throttled caller was told to come back
// after (the input's redelivery delay). Either way it is time an
// onboarding spent waiting for the tenant's budget.
func waited(scope string, d time.Duration) {
	metrics.ThrottleWait.WithLabelValues(scope).Add(d.Seconds())
}

// reserve takes a slot for one call of kind k costing ru resource units:
// reserveBatch for one.
func (g *Gate) reserve(ctx context.Context, k Kind, ru int, horizon time.Duration) (time.Duration, Scope, bool, error) {
	waits, scope, n, err := g.reserveBatch(ctx, k, []int{ru}, horizon, horizon, false)
	return waits[0], scope, n == 1, err
}

// reserveBatch takes slots in every paced scope of kind k for the oldest
// callers of rus (each one's resource units), one after the other, all
// scopes or none, for as many of them as start within horizon: n, with
// waits[i] how long until caller i's slot starts, and scope the one that
// sets the first caller's. When the first caller's slot would start
// later than from, it takes nothing: n is 0 and waits[0] is the wait. A
// wait beyond MaxWait is a failure.Throttle: the callers are told to come
// back.
//
// One read and one compare-and-set of each scope serve the whole batch,
// which is what keeps pacing cheap under load; from below horizon makes
// the batches of a steady queue larger than one.
func (g *Gate) reserveBatch(ctx context.Context, k Kind, rus []int, from, horizon time.Duration, ahead bool) (waits []time.Duration, binding Scope, n int, err error) {
	type slot struct {
		s     Scope
		st    paceState
		rev   uint64
		start int64
		// costs are each caller's units of s; used their sum over the
		// first n.
		costs []float64
		used  float64
	}
	waits = make([]time.Duration, len(rus))
	callers := len(rus) // the real ones, before any booked ahead
	var slots []slot
	for _, s := range charges[k] {
		if !g.pacing(s) {
			continue
		}
		costs := make([]float64, len(rus))
		for i, ru := range rus {
			costs[i] = 1
			if s == ScopeResourceUnits {
				costs[i] = float64(max(ru, 1))
			}
		}
		slots = append(slots, slot{s: s, costs: costs})
	}
	if len(slots) == 0 {
		return waits, ScopeUnknown, len(rus), nil
	}
	for {
		// Read every scope first, so that a refusal takes nothing.
		now := g.now().UnixNano()
		var wait int64
		binding = slots[len(slots)-1].s
		var rate float64
		for i := range slots {
			sl := &slots[i]
			st, rev, err := g.load(ctx, sl.s)
			if err != nil {
				return waits, ScopeUnknown, 0, err
			}
			sl.st, sl.rev = st, rev
			g.ctl[sl.s].init(&sl.st, now)
			g.ctl[sl.s].tick(&sl.st, now)
			g.steady[sl.s].Store(sl.st.Steady)
			sl.start = sl.st.start(now)
			if w := sl.start - now; w > wait {
				wait, binding, rate = w, sl.s, sl.st.Rate
			}
		}
		if d := time.Duration(wait); d > g.o.MaxWait {
			g.note(binding, 0, true)
			after := d + jitter(d)
			waited(scopeInfos[binding].metric, after)
			return waits, binding, 0, failure.Throttle(fmt.Errorf("the tenant's Graph %s budget of %.4g/s is taken for the next %s",
				binding, rate, d.Round(time.Millisecond)), after)
		}
		if time.Duration(wait) > from {
			if time.Duration(wait) > horizon {
				// Demand beyond the rate, for the controller: callers
				// wait longer than a horizon. (Between from and the
				// horizon the booking merely waits to serve more.)
				g.note(binding, 0, true)
			}
			waits[0] = time.Duration(wait)
			return waits, binding, 0, nil
		}
		// The callers whose slots, one after the other in every scope,
		// start within the horizon.
		n = 0
		for i := range slots {
			slots[i].used = 0
		}
		if ahead && wait == 0 && len(rus) < maxBatch {
			// Every scope idle: book ahead too, up to from, slots like
			// the last caller's for callers to come, so that a scope far
			// from its limit costs a round trip per batch, not per call.
			last := rus[len(rus)-1]
			for i := range slots {
				c := slots[i].costs[len(rus)-1]
				for len(slots[i].costs) < maxBatch {
					slots[i].costs = append(slots[i].costs, c)
				}
			}
			for len(rus) < maxBatch {
				rus = append(rus, last)
			}
			waits = append(waits, make([]time.Duration, len(rus)-len(waits))...)
			horizon = from
		}
		for n < len(rus) {
			var w int64
			for i := range slots {
				sl := &slots[i]
				at := sl.start + int64(sl.used/sl.st.Rate*float64(time.Second))
				w = max(w, at-now)
			}
			if n > 0 && time.Duration(w) > horizon {
				break
			}
			waits[n] = time.Duration(w)
			for i := range slots {
				slots[i].used += slots[i].costs[n]
			}
			n++
		}
		if n < callers {
			// Callers left for later: demand beyond the rate.
			g.note(binding, 0, true)
		}
		committed := 0
		for i := range slots {
			sl := &slots[i]
			pend := g.take(sl.s)
			pct := pend.pct
			if pend.at < sl.st.Resume {
				pct = 0 // seen before the last pause ended: stale
			}
			g.ctl[sl.s].observe(&sl.st, pct, pend.limited || sl.start-now > int64(horizon) && sl.s == binding)
			sl.st.TAT = sl.start + int64(sl.used/sl.st.Rate*float64(time.Second))
			sl.st.Used += sl.used
			err := g.save(ctx, sl.s, sl.st, sl.rev)
			if err != nil {
				g.restore(sl.s, pend)
				if !errors.Is(err, errConflict) {
					return waits, ScopeUnknown, 0, err
				}
				break
			}
			committed++
		}
		if committed == len(slots) {
			return waits, binding, n, nil
		}
		if committed > 0 {
			// Another worker went first on a later scope while the
			// earlier ones were taken: take that one's next slots,
			// however far, rather than waste the others.
			for _, sl := range slots[committed:] {
				if err := g.finish(ctx, sl.s, sl.costs[:n], now, waits); err != nil {
					return waits, ScopeUnknown, 0, err
				}
			}
			return waits, binding, n, nil
		}
	}
}

// finish takes the next slots of s whatever their distance, for the
// callers of a batch whose other slots are taken, raising their waits
// where s's slots come later.
func (g *Gate) finish(ctx context.Context, s Scope, costs []float64, now int64, waits []time.Duration) error {
	for {
		st, rev, err := g.load(ctx, s)
		if err != nil {
			return err
		}
		g.ctl[s].init(&st, now)
		start := st.start(now)
		var used float64
		at := make([]int64, len(costs))
		for i, c := range costs {
			at[i] = start + int64(used/st.Rate*float64(time.Second))
			used += c
		}
		st.TAT = start + int64(used/st.Rate*float64(time.Second))
		st.Used += used
		err = g.save(ctx, s, st, rev)
		if errors.Is(err, errConflict) {
			continue
		}
		if err != nil {
			return err
		}
		for i := range costs {
			waits[i] = max(waits[i], time.Duration(at[i]-now))
		}
		return nil
	}
}

// note records what this worker saw of scope s, for its next slot of it.
func (g *Gate) note(s Scope, pct float64, limited bool) {
	if s <= ScopeUnknown || s >= numScopes {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	p := &g.pending[s]
	if pct > 0 {
		p.pct, p.at = max(p.pct, pct), max(p.at, g.now().UnixNano())
	}
	p.limited = p.limited || limited
}

// take returns and clears what this worker saw of s; restore puts it
// back when it could not be stored.
func (g *Gate) take(s Scope) pending {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.pending[s]
	g.pending[s] = pending{}
	return p
}

func (g *Gate) restore(s Scope, p pending) {
	g.mu.Lock()
	defer g.mu.Unlock()
	q := &g.pending[s]
	q.pct, q.at = max(q.pct, p.pct), max(q.at, p.at)
	q.limited = q.limited || p.limited
}

// throttled applies a 429 on scope s: every worker pauses s for d, and the
// rate comes down.
func (g *Gate) throttled(ctx context.Context, s Scope, d time.Duration) error {
	if s <= ScopeUnknown || s >= numScopes {
		return nil
	}
	until := g.now().Add(d).UnixNano()
	err := g.pause(ctx, scopeInfos[s].pause, d)
	if !g.paced(s) || g.ctl[s].Static {
		return err
	}
	for {
		st, rev, lerr := g.load(ctx, s)
		if lerr != nil {
			return errors.Join(err, lerr)
		}
		now := g.now().UnixNano()
		if g.ctl[s].Lazy && (rev == 0 || st.Idle) {
			g.ctl[s].wake(&st, now)
		}
		g.ctl[s].init(&st, now)
		g.ctl[s].throttled(&st, now, until)
		serr := g.save(ctx, s, st, rev)
		if !errors.Is(serr, errConflict) {
			g.steady[s].Store(true)
			return errors.Join(err, serr)
		}
	}
}

// signalled applies a limit percentage of scope s at once where it cannot
// wait for the interval to close: in slow start (Controller.signalled).
func (g *Gate) signalled(ctx context.Context, s Scope, pct float64) error {
	if s <= ScopeUnknown || s >= numScopes || !g.paced(s) {
		return nil
	}
	if !g.pacing(s) {
		return g.activate(ctx, s)
	}
	if pct < NearAt || g.steady[s].Load() {
		return nil
	}
	changed := false
	err := g.update(ctx, s, func(st *paceState, now int64) bool {
		changed = g.ctl[s].signalled(st, pct, now)
		if !changed {
			g.steady[s].Store(st.Steady)
		}
		return changed
	})
	if err != nil || !changed {
		return err
	}
	g.steady[s].Store(true)
	return g.invalidate(ctx, s)
}

// charge adds units of s that a call spent beyond what its slot took
// (fewer when negative): the resource units an answer reports.
func (g *Gate) charge(ctx context.Context, s Scope, units float64) error {
	if units == 0 || !g.pacing(s) {
		return nil
	}
	return g.update(ctx, s, func(st *paceState, now int64) bool {
		st.TAT = max(st.TAT, now-int64(g.o.MaxWait)) + int64(units/st.Rate*float64(time.Second))
		return true
	})
}

// update applies change to scope s's shared state, read afresh and given
// its rate (Controller.init) at the clock's now, and stores it by
// compare-and-set, again from the read on a conflict; change reports
// whether there is anything to store.
func (g *Gate) update(ctx context.Context, s Scope, change func(st *paceState, now int64) bool) error {
	for {
		st, rev, err := g.load(ctx, s)
		if err != nil {
			return err
		}
		now := g.now().UnixNano()
		g.ctl[s].init(&st, now)
		if !change(&st, now) {
			return nil
		}
		if err := g.save(ctx, s, st, rev); !errors.Is(err, errConflict) {
			return err
		}
	}
}

// Rate is scope s's current shared rate per second, 0 before anyone set
// one (or when s is not paced).
func (g *Gate) Rate(ctx context.Context, s Scope) (float64, error) {
	if s <= ScopeUnknown || s >= numScopes || !g.paced(s) {
		return 0, nil
	}
	st, _, err := g.load(ctx, s)
	return st.Rate, err
}

// Pause stops every worker's writes for d, as a 429's Retry-After asks.
func (g *Gate) Pause(ctx context.Context, d time.Duration) error {
	return g.pause(ctx, keyPause, d)
}

// pause raises the pause under key to d from now, here and in the bucket.
func (g *Gate) pause(ctx context.Context, key string, d time.Duration) error {
	until := g.now().Add(d).UnixNano()
	g.raisePause(key, until)
	for {
		b, rev, err := g.st.get(ctx, key)
		if err != nil {
			return err
		}
		var cur int64
		if b != nil {
			if cur, err = strconv.ParseInt(string(b), 10, 64); err != nil {
				cur = 0 // a damaged pause is overwritten
			}
		}
		if cur >= until {
			return nil
		}
		_, err = g.st.put(ctx, key, []byte(strconv.FormatInt(until, 10)), rev)
		if !errors.Is(err, errConflict) {
			return err
		}
	}
}

// jitter spreads the workers told to wait the same time over a tenth of
// it, so they do not return in one burst.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d)/10 + 1))
}

// State is scope s's shared pacing state as text, for tracing.
func (g *Gate) State(ctx context.Context, s Scope) (string, error) {
	st, _, err := g.load(ctx, s)
	return fmt.Sprintf("rate %.1f steady %v max %.1f pct %.2f paused %s refill %v", st.Rate, st.Steady, st.Max, st.Pct,
		g.pausedFor(scopeInfos[s].pause).Round(time.Millisecond), st.Refill), err
}
