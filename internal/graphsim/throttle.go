package graphsim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Microsoft's Graph limits for the scopes graphsim emulates, from
// "Microsoft Graph service-specific throttling limits"
// (https://learn.microsoft.com/graph/throttling-limits, source
// microsoftgraph/microsoft-graph-docs-contrib concepts/throttling-limits.md):
//
//   - Identity and access, per application+tenant pair: a resource unit
//     quota of 3,500 (tenant under 50 users), 5,000 (50–500) or 8,000
//     (above 500) per 10 seconds, and 3,000 writes per 2 minutes 30 seconds.
//   - Identity and access, per tenant for all apps: 18,000 writes per
//     5 minutes.
//   - Identity and access, per application across all tenants: 150,000
//     resource units per 20 seconds and 70,000 writes per 5 minutes. Not
//     emulated: the emulator has one tenant, so the pair limits above are
//     always the tighter ones.
//   - Invitation manager, per tenant for all apps: 150 requests per
//     5 seconds.
//   - Outlook, per app and mailbox: 10,000 requests per 10 minutes and 4
//     concurrent requests. (Older revisions of the page put the
//     4-concurrent limit on the app across mailboxes; the current one puts
//     it on the app and mailbox, which is what the emulator does.)
//
// Every default is unlimited, so dev and tests are not throttled unless
// they ask to be; these constants are what to ask for.
const (
	MicrosoftResourceUnitLimitS = "3500/10s"
	MicrosoftResourceUnitLimitM = "5000/10s"
	MicrosoftResourceUnitLimitL = "8000/10s"
	MicrosoftWriteLimit         = "3000/150s"
	MicrosoftTenantWriteLimit   = "18000/300s"
	MicrosoftInviteLimit        = "150/5s"
	MicrosoftMailLimit          = "10000/10m"
	MicrosoftMailConcurrency    = 4
)

// Headers of Microsoft's identity and access throttling, as the same page
// describes them under "Additional headers":
//
//   - x-ms-resource-unit on regular responses: the resource units the
//     request used, a positive integer.
//   - x-ms-throttle-limit-percentage on regular responses, only once the
//     application has consumed more than 0.8 of its limit: how much of the
//     limit is used, from 0.8 to 1.8.
//   - x-ms-throttle-scope on throttled responses:
//     <Scope>/<Limit>/<ApplicationId>/<TenantId|UserId|ResourceId>, Scope
//     one of Tenant_Application, Tenant, Application, Limit one of Read,
//     Write, ReadWrite, e.g.
//     Tenant_Application/ReadWrite/9a3d526c-…/0785ef7c-….
//   - x-ms-throttle-information on throttled responses: why, any string;
//     examples are CPULimitExceeded, WriteLimitExceeded and
//     ResourceUnitLimitExceeded.
const (
	headerResourceUnit    = "x-ms-resource-unit"
	headerLimitPercentage = "x-ms-throttle-limit-percentage"
	headerThrottleScope   = "x-ms-throttle-scope"
	headerThrottleInfo    = "x-ms-throttle-information"
)

// scopeID names one throttling limit the emulator keeps.
type scopeID int

const (
	scopeRU              scopeID = iota // resource units per app+tenant
	scopeWrite                          // identity writes per app+tenant
	scopeTenantWrite                    // identity writes per tenant, all apps
	scopeInvite                         // invitations per tenant, all apps
	scopeMail                           // Outlook requests per app and mailbox
	scopeMailConcurrency                // Outlook requests at once per app and mailbox
	numScopes
)

// scopeInfo is how a scope shows itself: key in /_sim/stats, the
// <Scope>/<Limit> part of x-ms-throttle-scope, x-ms-throttle-information,
// and its name in error messages.
//
// Microsoft documents the scope header and the first two reasons for
// identity and access only. For the invitation manager and Outlook it says
// nothing; the emulator sends the same headers there so that one parser
// reads every 429, with values of its own choosing in Microsoft's format:
// invitations are Tenant/Write (the limit is per tenant for all apps, and
// an invitation is a POST) with reason InvitationLimitExceeded; Outlook's
// are Application/ReadWrite/<app>/<mailbox user id> with
// MailboxRequestLimitExceeded or MailboxConcurrencyLimitExceeded.
type scopeInfo struct {
	key, scope, reason, what string
}

var scopes = [numScopes]scopeInfo{
	scopeRU:              {"ru", "Tenant_Application/ReadWrite", "ResourceUnitLimitExceeded", "resource unit"},
	scopeWrite:           {"write", "Tenant_Application/Write", "WriteLimitExceeded", "identity write"},
	scopeTenantWrite:     {"tenantWrite", "Tenant/Write", "WriteLimitExceeded", "tenant-wide identity write"},
	scopeInvite:          {"invite", "Tenant/Write", "InvitationLimitExceeded", "invitation"},
	scopeMail:            {"mail", "Application/ReadWrite", "MailboxRequestLimitExceeded", "mailbox request"},
	scopeMailConcurrency: {"mailConcurrency", "Application/ReadWrite", "MailboxConcurrencyLimitExceeded", "concurrent mailbox request"},
}

// budgets are Graph's throttling limits as sliding windows: a request is
// admitted when the units admitted within the last Per, plus its own, are
// at most N. Microsoft describes a token bucket; a sliding window is used
// because it is as strict at every instant, cannot admit 2N across a
// window edge, and gives an exact Retry-After. Refused requests spend
// nothing, so a client that honours Retry-After always gets through.
// (Microsoft's throttling guidance says throttled requests still accrue
// against the limits; the emulator does not charge them, so that a test's
// counts follow from its admitted calls alone.)
type budgets struct {
	mu     sync.Mutex
	limits [numScopes]Limit
	// windows[scope][key]: key is the app id for the app+tenant scopes,
	// "" for the tenant scopes, app id and mailbox for Outlook.
	windows [numScopes]map[string]*window

	mailConcurrency int            // 0 = unlimited
	inFlight        map[string]int // by mailbox
}

func newBudgets(limits [numScopes]Limit, mailConcurrency int) *budgets {
	b := &budgets{limits: limits, mailConcurrency: mailConcurrency, inFlight: map[string]int{}}
	b.clear()
	return b
}

func (b *budgets) clear() {
	for i := range b.windows {
		b.windows[i] = map[string]*window{}
	}
}

func (b *budgets) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clear()
	// In-flight requests still end and give their slots back.
}

// charge is what a request spends of one scope.
type charge struct {
	scope scopeID
	key   string
	cost  int
}

// verdict is budgets.take's answer. fraction is the highest share of a
// limit used among the limited scopes the request spends, this request
// included (so above 1 on a refusal); 0 when none of them is limited.
type verdict struct {
	wait     time.Duration // 0: admitted
	refused  scopeID
	limit    Limit
	fraction float64
}

// take spends every charge, or none when any scope lacks room; a refusal
// reports how long until the tightest scope has room and which it is.
func (b *budgets) take(charges []charge, now time.Time) verdict {
	b.mu.Lock()
	defer b.mu.Unlock()
	var v verdict
	ws := make([]*window, len(charges))
	for i, ch := range charges {
		w := windowIn(b.windows[ch.scope], ch.key, b.limits[ch.scope])
		ws[i] = w
		if d := w.wait(now, ch.cost); d > v.wait {
			v.wait, v.refused, v.limit = d, ch.scope, w.limit
		}
		v.fraction = max(v.fraction, w.fraction(ch.cost))
	}
	if v.wait > 0 {
		return v
	}
	for i, ch := range charges {
		ws[i].add(now, ch.cost)
	}
	return v
}

// spend takes one unit of scope's key n times at now, as another app
// would, and reports how many fitted.
func (b *budgets) spend(scope scopeID, key string, n int, now time.Time) (admitted int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	w := windowIn(b.windows[scope], key, b.limits[scope])
	if w.limit.Unlimited() {
		return n
	}
	for range n {
		if w.wait(now, 1) > 0 {
			break // the window does not move within one instant
		}
		w.add(now, 1)
		admitted++
	}
	return admitted
}

// enterMailbox takes one of mailbox's concurrency slots; false when all
// are taken. Every true must be matched by a leaveMailbox.
func (b *budgets) enterMailbox(mailbox string) bool {
	if b.mailConcurrency <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inFlight[mailbox] >= b.mailConcurrency {
		return false
	}
	b.inFlight[mailbox]++
	return true
}

func (b *budgets) leaveMailbox(mailbox string) {
	if b.mailConcurrency <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inFlight[mailbox]--; b.inFlight[mailbox] <= 0 {
		delete(b.inFlight, mailbox)
	}
}

// window is a sliding log of admissions and their costs, in a ring of size
// N: every admission costs at least one unit, so at most N are inside.
type window struct {
	limit Limit
	times []time.Time
	costs []int
	head  int // oldest
	n     int
	total int // sum of costs inside
}

func newWindow(l Limit) *window {
	if l.Unlimited() {
		return &window{limit: l}
	}
	return &window{limit: l, times: make([]time.Time, l.N), costs: make([]int, l.N)}
}

// prune drops admissions older than the window.
func (w *window) prune(now time.Time) {
	for w.n > 0 && !w.times[w.head].After(now.Add(-w.limit.Per)) {
		w.total -= w.costs[w.head]
		w.head = (w.head + 1) % len(w.times)
		w.n--
	}
}

// clamp limits a cost to the whole window: a request dearer than the limit
// is admitted into an empty window rather than never.
func (w *window) clamp(cost int) int { return min(max(cost, 1), w.limit.N) }

// wait drops admissions older than the window and returns how long until
// cost more units fit, zero if they fit now.
func (w *window) wait(now time.Time, cost int) time.Duration {
	if w.limit.Unlimited() {
		return 0
	}
	w.prune(now)
	need := w.total + w.clamp(cost) - w.limit.N // units that must leave first
	for i := 0; need > 0 && i < w.n; i++ {
		j := (w.head + i) % len(w.times)
		if need -= w.costs[j]; need <= 0 {
			return w.times[j].Add(w.limit.Per).Sub(now)
		}
	}
	return 0
}

// fraction is the share of the limit used once cost more units are in;
// call it after wait, which prunes. Zero when unlimited.
func (w *window) fraction(cost int) float64 {
	if w.limit.Unlimited() {
		return 0
	}
	return float64(w.total+w.clamp(cost)) / float64(w.limit.N)
}

func (w *window) add(now time.Time, cost int) {
	if w.limit.Unlimited() {
		return
	}
	cost = w.clamp(cost)
	j := (w.head + w.n) % len(w.times)
	w.times[j], w.costs[j] = now, cost
	w.n++
	w.total += cost
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

// resourceUnits is what an identity and access call costs, by the rules
// of "Microsoft Graph service-specific throttling limits": the route's
// base cost (GET users 2, GET subscribedSkus 3, GET me/licenseDetails 2,
// which also covers users/{id}/licenseDetails, any other identity call 1),
// minus 1 for $select, plus 1 for $expand, minus 1 for $top below 20, and
// never below 1.
func resourceUnits(base int, r *http.Request) int {
	q := r.URL.Query()
	cost := base
	if q.Has("$select") {
		cost--
	}
	if q.Has("$expand") {
		cost++
	}
	if n, err := strconv.Atoi(q.Get("$top")); err == nil && n < 20 {
		cost--
	}
	return max(1, cost)
}

// charges lists what the call spends. An identity call spends resource
// units; an identity write also one write of the app+tenant pair and one
// of the tenant; an invitation also one invitation. An Outlook call spends
// one request of its app and mailbox.
func (c *call) charges() []charge {
	switch c.rt.service {
	case identityService:
		out := []charge{{scopeRU, c.appID, resourceUnits(c.rt.ru, c.r)}}
		if c.rt.budget != noBudget {
			out = append(out, charge{scopeWrite, c.appID, 1}, charge{scopeTenantWrite, "", 1})
		}
		if c.rt.budget == inviteBudget {
			out = append(out, charge{scopeInvite, "", 1})
		}
		return out
	case outlookService:
		return []charge{{scopeMail, c.appID + "/" + c.s.mailboxKey(c.param("id")), 1}}
	}
	return nil
}

// admit charges the call's scopes. Identity and access answers carry
// x-ms-resource-unit and, past 0.8 of a limit, x-ms-throttle-limit-percentage;
// a refusal is 429 with Retry-After (whole seconds, at least 1),
// x-ms-throttle-scope and x-ms-throttle-information, and no side effect.
func (c *call) admit() bool {
	charges := c.charges()
	if len(charges) == 0 {
		return true
	}
	v := c.s.budgets.take(charges, c.now)
	identity := c.rt.service == identityService
	if identity && v.fraction > 0.8 {
		c.w.Header().Set(headerLimitPercentage, formatFraction(v.fraction))
	}
	if v.wait <= 0 {
		if identity {
			c.w.Header().Set(headerResourceUnit, strconv.Itoa(charges[0].cost))
		}
		c.s.stats.count(func(st *stats) {
			for _, ch := range charges {
				st.scopes[ch.scope].admitted++
				st.scopes[ch.scope].spent += ch.cost
			}
		})
		return true
	}
	c.s.stats.count(func(st *stats) { st.scopes[v.refused].throttled++ })
	resource := c.s.opts.TenantID
	if c.rt.service == outlookService {
		resource = c.s.mailboxKey(c.param("id"))
	}
	c.throttleHeaders(v.refused, resource)
	which, l := scopes[v.refused].what, v.limit
	if c.rt.service == outlookService {
		c.throttled(v.wait, "ApplicationThrottled", func(int) string {
			return fmt.Sprintf("Application is over its mailbox request limit of %d per %s.", l.N, l.Per)
		})
		return false
	}
	c.throttled(v.wait, "TooManyRequests", func(secs int) string {
		return fmt.Sprintf("Too many requests: the %s budget of %d per %s is spent. Retry after %d seconds.", which, l.N, l.Per, secs)
	})
	return false
}

// throttleHeaders names the refusing scope in Microsoft's format;
// resource is the tenant, or for Outlook the mailbox's user id.
func (c *call) throttleHeaders(id scopeID, resource string) {
	app := c.appID
	if app == "" { // refused before authentication (mailbox concurrency)
		app = c.s.opts.ClientID
	}
	h := c.w.Header()
	h.Set(headerThrottleScope, strings.Join([]string{scopes[id].scope, app, resource}, "/"))
	h.Set(headerThrottleInfo, scopes[id].reason)
}

// formatFraction writes a share of a limit as Microsoft's
// x-ms-throttle-limit-percentage does: a decimal fraction (the page calls
// it a percentage but gives its range as 0.8 to 1.8), here with at most two
// decimals and capped at 1.8.
func formatFraction(f float64) string {
	return strconv.FormatFloat(math.Round(min(f, 1.8)*100)/100, 'f', -1, 64)
}

// mailboxKey names the mailbox a path's {id | userPrincipalName} means by
// its user id, so both spellings share one mailbox's limits.
func (s *Sim) mailboxKey(idOrUPN string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.st.lookupUser(idOrUPN); u != nil {
		return u.id
	}
	return strings.ToLower(idOrUPN)
}

// tooManyMailRequests answers an Outlook request beyond its mailbox's
// concurrency limit with the code and message Graph is seen to answer then
// (ApplicationThrottled, "Application is over its MailboxConcurrency
// limit."; Microsoft's page names the limit, not the answer).
func (c *call) tooManyMailRequests(mailbox string) {
	c.s.stats.count(func(st *stats) { st.scopes[scopeMailConcurrency].throttled++ })
	c.throttleHeaders(scopeMailConcurrency, mailbox)
	c.throttled(time.Second, "ApplicationThrottled", func(int) string {
		return "Application is over its MailboxConcurrency limit."
	})
}

// throttled answers 429 with Retry-After in whole seconds (at least 1) and
// counts it; message gets those seconds.
func (c *call) throttled(wait time.Duration, code string, message func(secs int) string) {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	c.s.stats.count(func(st *stats) { st.throttled++ })
	c.w.Header().Set("Retry-After", strconv.Itoa(secs))
	c.fail(http.StatusTooManyRequests, code, message(secs))
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
