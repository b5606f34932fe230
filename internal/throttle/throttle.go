// Package throttle shares one Microsoft Graph budget among every worker of a
// tenant — replicas of a step and the different steps alike — through a NATS
// key-value bucket, so that no extra server is needed. Dataverse's service
// protection 429s are shared the same way, per instance.
//
// Graph budgets identity writes per app and tenant (3,000 per 2.5 minutes)
// and invitations per tenant (150 per 5 seconds). Workers that each retry on
// their own turn overload into a storm of 429s. The Gate does two things:
//
//   - it paces writes below a configured rate, with GCRA ("virtual
//     scheduling") over a shared theoretical arrival time that workers
//     advance by compare-and-set, so the tenant-wide rate holds whatever the
//     number of replicas;
//   - when Graph answers 429 anyway, it records Retry-After in the bucket and
//     every worker stops writing until then, instead of each learning it
//     from a 429 of its own;
//   - when a Dataverse instance answers 429 (its service protection limits
//     count per app user and instance, whichever worker calls), every
//     worker stops calling that instance until its Retry-After, as
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
	"strconv"
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

// Keys in the bucket: the theoretical arrival time of the next write and of
// the next invitation, and the times until which Graph writes and each
// Dataverse instance's calls are paused, all as Unix nanoseconds.
const (
	keyWrites         = "graph.writes"
	keyInvites        = "graph.invitations"
	keyPause          = "graph.pause"
	keyDataversePause = "dataverse.*.pause" // * is the instance's key; see dataverseKey
)

// Defaults for Microsoft's published limits, with a tenth kept in reserve
// for other applications' writes and for clock skew between workers:
// 3,000 identity writes per 150 s is 20/s; 150 invitations per 5 s is 30/s.
const (
	DefaultWriteRate  = 18.0
	DefaultInviteRate = 27.0
)

// Options configure a Gate.
type Options struct {
	// WriteRate is identity writes per second for the whole tenant; 0
	// disables pacing (429s are still shared).
	WriteRate float64
	// InviteRate is invitations per second for the whole tenant; 0
	// disables it.
	InviteRate float64
	// MaxWait is the longest pacing wait slept in place; longer waits are
	// handed back to the broker. Default 2s.
	MaxWait time.Duration
	// Replicas is how many servers of a JetStream cluster keep the
	// bucket (0 means 1); see provision.KeyValue.
	Replicas int
}

// Gate is one worker's view of the tenant's shared Graph budget.
type Gate struct {
	kv jetstream.KeyValue
	o  Options
	// pauses are local copies of the pause keys (key → *atomic.Int64, Unix
	// ns), kept by a watch so that checking one costs no round trip.
	pauses sync.Map
	now    func() time.Time
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
	if o.MaxWait <= 0 {
		o.MaxWait = 2 * time.Second
	}
	cfg := BucketConfig()
	cfg.Replicas = o.Replicas
	kv, _, err := provision.KeyValue(ctx, js, cfg)
	if err != nil {
		return nil, fmt.Errorf("throttle: %w", err)
	}
	g := &Gate{kv: kv, o: o, now: time.Now}
	w, err := g.watch(ctx)
	if err != nil {
		return nil, fmt.Errorf("throttle: watching the pauses: %w", provision.Denied(js.Conn(), err))
	}
	go g.follow(ctx, w)
	return g, nil
}

// watch follows every pause key.
func (g *Gate) watch(ctx context.Context) (jetstream.KeyWatcher, error) {
	return g.kv.WatchFiltered(ctx, []string{keyPause, keyDataversePause})
}

// follow keeps the local pauses in step with the bucket, so checking it costs
// no round trip. A watch can end with the connection (a broker restart);
// it is then opened again.
func (g *Gate) follow(ctx context.Context, w jetstream.KeyWatcher) {
	for {
		g.drain(ctx, w)
		_ = w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			var err error
			if w, err = g.watch(ctx); err == nil {
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
			if v, err := strconv.ParseInt(string(e.Value()), 10, 64); err == nil {
				g.raisePause(e.Key(), v)
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

// paused reports how long calls under key must still wait, with jitter, or
// zero.
func (g *Gate) paused(key string) time.Duration {
	now := g.now()
	until := time.Unix(0, g.pauseOf(key).Load())
	if !until.After(now) {
		return 0
	}
	return until.Sub(now) + jitter(until.Sub(now))
}

// Kind is what a Graph request costs.
type Kind int

// Request kinds.
const (
	Free Kind = iota
	Write
	Invitation // a write that also counts against the invitation budget
)

// Acquire waits for budget for one request of kind k, or returns a
// failure.Throttle error saying how long to wait when that is longer than
// MaxWait or writes are paused.
func (g *Gate) Acquire(ctx context.Context, k Kind) error {
	if k == Free {
		return nil
	}
	if d := g.paused(keyPause); d > 0 {
		waited(metrics.ScopeWrite, d)
		return failure.Throttle(fmt.Errorf("graph writes are paused for %s after a 429", d.Round(time.Millisecond)), d)
	}
	var wait time.Duration
	scope := metrics.ScopeWrite
	if k == Invitation && g.o.InviteRate > 0 {
		d, err := g.reserve(ctx, keyInvites, g.o.InviteRate)
		if err != nil {
			return err
		}
		wait, scope = d, metrics.ScopeInvitation
	}
	if g.o.WriteRate > 0 {
		d, err := g.reserve(ctx, keyWrites, g.o.WriteRate)
		if err != nil {
			return err
		}
		if d > wait {
			wait, scope = d, metrics.ScopeWrite
		}
	}
	if wait <= 0 {
		return nil
	}
	start := time.Now()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		waited(scope, wait)
		return nil
	case <-ctx.Done():
		waited(scope, time.Since(start))
		return ctx.Err()
	}
}

// scopes are the metric scopes of the rate keys.
var scopes = map[string]string{keyWrites: metrics.ScopeWrite, keyInvites: metrics.ScopeInvitation}

// waited counts d in guestflow_throttle_wait_seconds_total: a pacing wait
// slept in place, or the wait a throttled caller was told to come back
// after (the input's redelivery delay). Either way it is time an
// onboarding spent waiting for the tenant's budget.
func waited(scope string, d time.Duration) {
	metrics.ThrottleWait.WithLabelValues(scope).Add(d.Seconds())
}

// errConflict means another worker advanced the key first.
var errConflict = errors.New("throttle: concurrent update")

// reserve takes the next slot of a rate on key and returns how long until
// it starts. A slot further away than MaxWait is not taken: the caller is
// told to come back instead, and the slot stays free for whoever is first
// when it arrives.
func (g *Gate) reserve(ctx context.Context, key string, rate float64) (time.Duration, error) {
	interval := time.Duration(float64(time.Second) / rate)
	for {
		tat, rev, err := g.load(ctx, key)
		if err != nil {
			return 0, err
		}
		now := g.now().UnixNano()
		start := max(tat, now)
		wait := time.Duration(start - now)
		if wait > g.o.MaxWait {
			after := wait + jitter(wait)
			waited(scopes[key], after)
			return 0, failure.Throttle(fmt.Errorf("the tenant's Graph budget of %.4g/s is taken for the next %s", rate, wait.Round(time.Millisecond)),
				after)
		}
		err = g.store(ctx, key, start+int64(interval), rev)
		if errors.Is(err, errConflict) {
			continue
		}
		return wait, err
	}
}

// opTimeout bounds one read or write of the bucket, whatever the caller's
// deadline: a reply lost with a server (the bucket's leader killed while
// its replicas elect another) is never sent again, and the call would
// otherwise hold the step until its own deadline, minutes away. It is
// nats.go's timeout for a call without a deadline.
const opTimeout = 5 * time.Second

func (g *Gate) load(ctx context.Context, key string) (int64, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	e, err := g.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("throttle: %w", err)
	}
	v, err := strconv.ParseInt(string(e.Value()), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("throttle: key %s: %w", key, err)
	}
	return v, e.Revision(), nil
}

// store sets key to v if it is still at revision rev (0: absent).
func (g *Gate) store(ctx context.Context, key string, v int64, rev uint64) error {
	val := []byte(strconv.FormatInt(v, 10))
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	var err error
	if rev == 0 {
		_, err = g.kv.Create(ctx, key, val)
	} else {
		_, err = g.kv.Update(ctx, key, val, rev)
	}
	var apiErr *jetstream.APIError
	if errors.Is(err, jetstream.ErrKeyExists) || errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return errConflict
	}
	if err != nil {
		return fmt.Errorf("throttle: %w", err)
	}
	return nil
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
		cur, rev, err := g.load(ctx, key)
		if err != nil {
			return err
		}
		if cur >= until {
			return nil
		}
		err = g.store(ctx, key, until, rev)
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
