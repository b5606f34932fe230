package intake

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiters are the per-credential rate limits: each token, HMAC secret or
// client certificate subject has its own bucket, so one busy sender does
// not slow down another. Buckets idle for longer than it takes to fill
// them again are forgotten.
type limiters struct {
	rate  rate.Limit
	burst int

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiters(perSecond float64, burst int) *limiters {
	return &limiters{rate: rate.Limit(perSecond), burst: burst, buckets: map[string]*bucket{}}
}

// allow takes one request from key's bucket at now. When the bucket is
// empty it reports how long until it holds one again.
func (l *limiters) allow(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	b, found := l.buckets[key]
	if !found {
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	l.sweep(now)
	l.mu.Unlock()
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep forgets the buckets that are full again; called with l.mu held.
func (l *limiters) sweep(now time.Time) {
	refill := time.Duration(float64(l.burst) / float64(l.rate) * float64(time.Second))
	if refill < time.Minute {
		refill = time.Minute
	}
	if now.Sub(l.lastSweep) < refill {
		return
	}
	l.lastSweep = now
	for k, b := range l.buckets {
		if now.Sub(b.seen) > refill {
			delete(l.buckets, k)
		}
	}
}

// perMinute is the rate as WebHook-Allowed-Rate gives it: whole requests
// per minute, at least one.
func (l *limiters) perMinute() int {
	return max(1, int(math.Floor(float64(l.rate)*60)))
}

// retryAfterSeconds renders a wait as Retry-After's whole seconds, rounded
// up so that a sender who waits that long finds room.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
