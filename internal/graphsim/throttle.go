package graphsim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// budgets are Graph's throttling budgets as sliding windows: a request is
// admitted when fewer than N admitted requests fall within the last Per.
// A sliding window (not a fixed one) is used because Microsoft describes its
// limits that way and because it cannot admit 2N requests across a window
// edge. Refused requests do not spend budget, so a client that honours
// Retry-After always gets through.
type budgets struct {
	mu      sync.Mutex
	write   Limit
	invite  Limit
	writes  map[string]*window // per app id
	invites *window            // per tenant
}

func newBudgets(write, invite Limit) *budgets {
	return &budgets{write: write, invite: invite, writes: map[string]*window{}, invites: newWindow(invite)}
}

func (b *budgets) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes = map[string]*window{}
	b.invites = newWindow(b.invite)
}

// take spends one unit of every budget the route uses, or none when any of
// them is exhausted; it then reports how long until the tightest one frees
// a unit and which one it was.
func (b *budgets) take(app string, kind budgetKind, now time.Time) (wait time.Duration, which string, l Limit) {
	b.mu.Lock()
	defer b.mu.Unlock()
	w := windowIn(b.writes, app, b.write)
	if d := w.wait(now); d > 0 {
		wait, which, l = d, "identity write", b.write
	}
	if kind == inviteBudget {
		if d := b.invites.wait(now); d > wait {
			wait, which, l = d, "invitation", b.invite
		}
	}
	if wait > 0 {
		return wait, which, l
	}
	w.add(now)
	if kind == inviteBudget {
		b.invites.add(now)
	}
	return 0, "", Limit{}
}

// window is a sliding log of admission times in a ring of size N.
type window struct {
	limit Limit
	times []time.Time
	head  int // oldest
	n     int
}

func newWindow(l Limit) *window {
	if l.Unlimited() {
		return &window{limit: l}
	}
	return &window{limit: l, times: make([]time.Time, l.N)}
}

// wait drops admissions older than the window and returns how long until
// one more fits, zero if it fits now.
func (w *window) wait(now time.Time) time.Duration {
	if w.limit.Unlimited() {
		return 0
	}
	for w.n > 0 && !w.times[w.head].After(now.Add(-w.limit.Per)) {
		w.head = (w.head + 1) % len(w.times)
		w.n--
	}
	if w.n < len(w.times) {
		return 0
	}
	return w.times[w.head].Add(w.limit.Per).Sub(now)
}

func (w *window) add(now time.Time) {
	if w.limit.Unlimited() {
		return
	}
	w.times[(w.head+w.n)%len(w.times)] = now
	w.n++
}

// admit charges the route's budgets, answering 429 with Retry-After (whole
// seconds, at least 1) and no side effect when one is spent.
func (c *call) admit() bool {
	wait, which, l := c.s.budgets.take(c.appID, c.rt.budget, c.now)
	if wait <= 0 {
		return true
	}
	c.throttled(wait, "TooManyRequests", func(secs int) string {
		return fmt.Sprintf("Too many requests: the %s budget of %d per %s is spent. Retry after %d seconds.", which, l.N, l.Per, secs)
	})
	return false
}

// throttled answers 429 with Retry-After in whole seconds (at least 1) and
// counts it; message gets those seconds.
func (c *call) throttled(wait time.Duration, code string, message func(secs int) string) {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	c.s.stats.count(func(st *stats) { st.throttled++ })
	c.w.Header().Set("Retry-After", strconv.Itoa(secs))
	c.fail(http.StatusTooManyRequests, code, message(secs))
}

// windowIn returns key's window in m, creating it with limit l.
func windowIn(m map[string]*window, key string, l Limit) *window {
	w := m[key]
	if w == nil {
		w = newWindow(l)
		m[key] = w
	}
	return w
}

// dropConnection decides whether to drop a random DropRate share of API
// calls, counting each as a fault.
func (s *Sim) dropConnection() bool {
	if s.opts.DropRate <= 0 || rand.Float64() >= s.opts.DropRate {
		return false
	}
	s.stats.count(func(st *stats) { st.faults++ })
	return true
}

// injectFault answers a random FaultRate share of API calls with one of the
// transient failures Microsoft documents (429, 500, 503, 504), before any
// other work, so the failure has no side effect. 429s and half the 503s
// carry Retry-After, as Graph's do.
func (s *Sim) injectFault(c *call) bool {
	if s.opts.FaultRate <= 0 || rand.Float64() >= s.opts.FaultRate {
		return false
	}
	s.stats.count(func(st *stats) { st.faults++ })
	type fault struct {
		status               int
		graph, dv, bap, text string
	}
	faults := []fault{
		{http.StatusTooManyRequests, "TooManyRequests", "0x80072322", "TooManyRequests", "Too many requests (injected fault). Retry after the time in the Retry-After header."},
		{http.StatusInternalServerError, "generalException", "0x80040216", "InternalServerError", "An unexpected error occurred (injected fault)."},
		{http.StatusServiceUnavailable, "serviceNotAvailable", "0x80040216", "ServiceUnavailable", "The service is temporarily unavailable (injected fault)."},
		{http.StatusGatewayTimeout, "UnknownError", "0x80040216", "GatewayTimeout", "The gateway timed out (injected fault)."},
	}
	f := faults[rand.IntN(len(faults))]
	switch {
	case f.status == http.StatusTooManyRequests:
		c.w.Header().Set("Retry-After", strconv.Itoa(1+rand.IntN(3)))
	case f.status == http.StatusServiceUnavailable && rand.IntN(2) == 0:
		c.w.Header().Set("Retry-After", "1")
	}
	c.fail(f.status, c.pick(f.graph, f.dv, f.bap), f.text)
	return true
}
