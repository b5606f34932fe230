package throttle

import (
	"context"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/metrics"
)

// Transport returns an http.RoundTripper for Graph calls that takes budget
// from g before each (the scopes KindOf says it spends), holds sendMail to
// Outlook's four at once, and reads every answer's throttling headers: the
// resource units it cost, the limit percentage, and a 429's Retry-After
// and scope, which pause that scope for every worker.
func (g *Gate) Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{g: g, next: next}
}

type transport struct {
	g    *Gate
	next http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	k := KindOf(req.Method, req.URL.Path)
	if k == Free {
		return t.next.RoundTrip(req)
	}
	ctx := req.Context()
	route, ru := t.g.cost(k, req.URL)
	err := t.g.acquire(ctx, k, ru)
	var release func()
	if err == nil && k == SendMail {
		release, err = t.g.mail.enter(ctx)
	}
	if err != nil {
		if req.Body != nil {
			req.Body.Close() // RoundTrip must close the body, even on error
		}
		return nil, err
	}
	resp, err := t.next.RoundTrip(req)
	if release != nil {
		release()
	}
	if err == nil {
		t.g.observe(ctx, k, route, ru, ReadSignal(resp.StatusCode, resp.Header, t.g.now()))
	}
	return resp, err
}

// observe applies what an answer to a request of kind k says: a 429
// pauses and slows the scope it names; the resource units it reports
// correct what its slot took (and are remembered for its route); a limit
// percentage goes to the scope it is attributed to.
//
// A 429 that names no budget (no x-ms-throttle-scope or -information
// guestflow knows, which Graph's identity budgets always send) is not
// taken as one: it slows no rate, and a read's pauses nobody else, since
// every call spends resource units and one such answer would otherwise
// stop them all. A write's, an invitation's or a mail's still pauses its
// scope (writes for the first two) for everyone, as guestflow always
// did. Either way its caller waits its Retry-After (the runtime hands the
// input back with that delay).
func (g *Gate) observe(ctx context.Context, k Kind, route string, ru int, sig Signal) {
	if sig.Throttled {
		switch {
		case sig.Scope != ScopeUnknown:
			_ = g.throttled(ctx, blame(k, sig.Scope), sig.RetryAfter)
		case k != Read:
			_ = g.pause(ctx, scopeInfos[blame(k, sig.Scope)].pause, sig.RetryAfter)
		}
		return
	}
	if sig.ResourceUnits > 0 && route != "" {
		if ru != sig.ResourceUnits {
			g.costs.Store(route, sig.ResourceUnits)
			_ = g.charge(ctx, ScopeResourceUnits, float64(sig.ResourceUnits-ru))
		}
	}
	if s := g.sig.answered(k, sig.Percentage, g.now().UnixNano(), int64(g.o.Interval)); s != ScopeUnknown {
		g.note(s, sig.Percentage, false)
		_ = g.signalled(ctx, s, sig.Percentage)
	}
}

var idSegment = regexp.MustCompile(`/(users|groups|invitations|directoryObjects|subscribedSkus)/[^/]+`)

// cost is the resource units a request of kind k to u is expected to
// cost, and the route key they are remembered under: what the last answer
// on the route said (x-ms-resource-unit), else 1. A route is the path with
// its ids taken out and the query options that change the cost ($select,
// $expand, a $top under 20).
func (g *Gate) cost(k Kind, u *url.URL) (string, int) {
	if k == SendMail || k == Free {
		return "", 0
	}
	q := u.Query()
	key := idSegment.ReplaceAllString(u.Path, "/$1/{id}") + "?"
	for _, o := range []string{"$select", "$expand"} {
		if q.Has(o) {
			key += o
		}
	}
	if n, err := strconv.Atoi(q.Get("$top")); err == nil && n < 20 {
		key += "$top"
	}
	key = strconv.Itoa(int(k)) + " " + key
	if v, ok := g.costs.Load(key); ok {
		return key, v.(int)
	}
	return key, 1
}

// signals attributes a limit percentage to one scope. An answer carries
// the share of the fullest limit the call spent, without saying which: an
// invitation's may be the invitation budget's, the writes' or the
// resource units'. It is put down to the most general scope whose other
// calls show as much (the resource units when reads do, the writes when
// other writes do), else to the call's most specific scope, so that a
// full invitation budget does not hold the writes back, nor a full write
// budget the reads. An invitation's is the invitation budget's only when
// other writes were answered lately with less: without them it cannot be
// told from the writes', which every invitation spends too.
type signals struct {
	mu        sync.Mutex
	since     int64
	cur, prev [numKinds]float64
	// seen counts the answers of each kind in the current and previous
	// intervals, with a percentage or not.
	seenCur, seenPrev [numKinds]int
}

// attributionSlack absorbs Graph's rounding to two decimals.
const attributionSlack = 0.005

// answered records an answer of kind k, with its percentage (0: none),
// and returns the scope the percentage is attributed to.
func (s *signals) answered(k Kind, pct float64, now, interval int64) Scope {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now-s.since >= interval {
		s.prev, s.cur, s.since = s.cur, [numKinds]float64{}, now
		s.seenPrev, s.seenCur = s.seenCur, [numKinds]int{}
	}
	s.cur[k] = max(s.cur[k], pct)
	s.seenCur[k]++
	if pct <= 0 {
		return ScopeUnknown
	}
	level := func(k Kind) (float64, bool) { return max(s.cur[k], s.prev[k]), s.seenCur[k]+s.seenPrev[k] > 0 }
	read, _ := level(Read)
	switch k {
	case Read:
		return ScopeResourceUnits
	case Write:
		if pct <= read+attributionSlack {
			return ScopeResourceUnits
		}
		return ScopeWrites
	case Invitation:
		write, writes := level(Write)
		switch {
		case pct <= read+attributionSlack:
			return ScopeResourceUnits
		case !writes || pct <= write+attributionSlack:
			return ScopeWrites
		}
		return ScopeInvitations
	}
	return ScopeUnknown
}

// DataverseTransport returns an http.RoundTripper for Dataverse Web API
// calls that shares each instance's 429s: after one, every worker's calls
// to that instance fail at once with failure.Throttle until its
// Retry-After, rather than each worker spending requests on 429s of its
// own. Calls that are not to a Web API (the Power Platform admin API) pass
// through.
func (g *Gate) DataverseTransport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &dataverseTransport{g: g, next: next}
}

type dataverseTransport struct {
	g    *Gate
	next http.RoundTripper
}

func (t *dataverseTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	key, ok := dataverseKey(req.URL)
	if !ok {
		return t.next.RoundTrip(req)
	}
	if d := t.g.paused(key); d > 0 {
		waited(metrics.ScopeDataverse, d)
		if req.Body != nil {
			req.Body.Close() // RoundTrip must close the body, even on error
		}
		return nil, failure.Throttle(fmt.Errorf("calls to %s are paused for %s after a 429", instanceRoot(req.URL), d.Round(time.Millisecond)), d)
	}
	resp, err := t.next.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		_ = t.g.pause(req.Context(), key, ReadSignal(resp.StatusCode, resp.Header, t.g.now()).RetryAfter)
	}
	return resp, err
}

// webAPI marks where an instance URL ends and its Web API begins.
const webAPI = "/api/data/"

// instanceRoot is the instance URL of a Web API request.
func instanceRoot(u *url.URL) string {
	i := strings.Index(u.Path, webAPI)
	if i < 0 {
		return ""
	}
	return u.Host + u.Path[:i]
}

// dataverseKey is the bucket key of the instance a request is for: a hash
// of its URL, since a URL holds characters a key may not.
func dataverseKey(u *url.URL) (string, bool) {
	root := instanceRoot(u)
	if root == "" {
		return "", false
	}
	h := fnv.New64a()
	h.Write([]byte(strings.ToLower(root)))
	return strings.Replace(keyDataversePause, "*", strconv.FormatUint(h.Sum64(), 16), 1), true
}
