package graphsim

import (
	"fmt"
	"sync"
	"time"
)

// Dataverse's service protection limits, as Microsoft documents them: per
// user and web server, 6,000 requests in a sliding five minutes and 52
// requests at once, each answered 429 with Retry-After and its own error
// code. (The third, 1,200 s of execution time, is not emulated.)
const (
	MicrosoftDataverseLimit       = "6000/300s"
	MicrosoftDataverseConcurrency = 52

	codeDataverseRequests   = "0x80072322" // -2147015902
	codeDataverseConcurrent = "0x80072326" // -2147015898
)

// protection keeps Dataverse's service protection state per instance.
// graphsim accepts one app, so per instance is per app user and
// environment, as Microsoft counts.
type protection struct {
	limit       Limit
	concurrency int

	mu       sync.Mutex
	requests map[string]*window
	inFlight map[string]int
}

func newProtection(limit Limit, concurrency int) *protection {
	return &protection{limit: limit, concurrency: concurrency, requests: map[string]*window{}, inFlight: map[string]int{}}
}

func (p *protection) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests = map[string]*window{}
	// In-flight requests still end and give their slots back.
}

// enter takes a concurrency slot on instance; false when all are taken.
// Every true must be matched by a leave.
func (p *protection) enter(instance string) bool {
	if p.concurrency <= 0 {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inFlight[instance] >= p.concurrency {
		return false
	}
	p.inFlight[instance]++
	return true
}

func (p *protection) leave(instance string) {
	if p.concurrency <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inFlight[instance]--
}

// take spends one request of instance's window, or reports how long until
// one is free.
func (p *protection) take(instance string, now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := windowIn(p.requests, instance, p.limit)
	if d := w.wait(now, 1); d > 0 {
		return d
	}
	w.add(now, 1)
	return 0
}

// admitDataverse charges the instance's request window, answering 429 as
// Dataverse does when it is spent.
func (c *call) admitDataverse() bool {
	wait := c.s.protection.take(c.inst.name, c.now)
	if wait <= 0 {
		return true
	}
	l := c.s.protection.limit
	c.throttled(wait, codeDataverseRequests, func(int) string {
		return fmt.Sprintf("Number of requests exceeded the limit of %d over time window of %d seconds.", l.N, int(l.Per.Seconds()))
	})
	return false
}

// tooManyConcurrent answers a Dataverse request beyond the concurrency
// limit.
func (c *call) tooManyConcurrent() {
	c.throttled(time.Second, codeDataverseConcurrent, func(int) string {
		return fmt.Sprintf("Number of concurrent requests exceeded the limit of %d.", c.s.protection.concurrency)
	})
}
