package throttle

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/guestflow/guestflow/internal/wire"
)

// Microsoft's throttling headers on identity and access answers
// ("Microsoft Graph service-specific throttling limits", Additional
// headers): x-ms-resource-unit, the resource units a call used;
// x-ms-throttle-limit-percentage, how much of a limit is used once more
// than 0.8 is (a fraction from 0.8 to 1.8, despite its name); and on a 429
// x-ms-throttle-scope (<Scope>/<Limit>/<app>/<tenant or user>) and
// x-ms-throttle-information (why: WriteLimitExceeded, …).
const (
	HeaderResourceUnit    = "x-ms-resource-unit"
	HeaderLimitPercentage = "x-ms-throttle-limit-percentage"
	HeaderThrottleScope   = "x-ms-throttle-scope"
	HeaderThrottleInfo    = "x-ms-throttle-information"
)

// Signal is what one Graph answer says about the tenant's budget.
type Signal struct {
	// Percentage is x-ms-throttle-limit-percentage: the share of the
	// fullest limit the call spent, 0.8 to 1.8; 0 when absent (less than
	// 0.8 is used, or the service does not say).
	Percentage float64
	// ResourceUnits is x-ms-resource-unit, 0 when absent.
	ResourceUnits int
	// Throttled says the answer is 429; RetryAfter is its Retry-After,
	// or a few seconds when it names none.
	Throttled  bool
	RetryAfter time.Duration
	// Scope is the budget a 429's x-ms-throttle-information or
	// x-ms-throttle-scope names, ScopeUnknown when they name none
	// guestflow knows (or are absent).
	Scope Scope
}

// ReadSignal reads an answer's throttling headers.
func ReadSignal(status int, h http.Header, now time.Time) Signal {
	var s Signal
	if v, err := strconv.ParseFloat(strings.TrimSpace(h.Get(HeaderLimitPercentage)), 64); err == nil && v > 0 && v < 100 {
		s.Percentage = v
	}
	if v, err := strconv.Atoi(strings.TrimSpace(h.Get(HeaderResourceUnit))); err == nil && v > 0 {
		s.ResourceUnits = v
	}
	if status == http.StatusTooManyRequests {
		s.Throttled = true
		s.RetryAfter = 5 * time.Second
		if d := wire.RetryAfter(h.Get("Retry-After"), now); d > 0 {
			s.RetryAfter = d
		}
		s.Scope = throttledScope(h.Get(HeaderThrottleScope), h.Get(HeaderThrottleInfo))
	}
	return s
}

// throttledScope maps a 429's scope and information headers to the budget
// they name. The information is the more precise (a Tenant/Write scope is
// the tenant's writes or its invitations); without one known to it, the
// scope's <Limit> part decides: Write is the write budget, Read and
// ReadWrite the resource units that reads and writes alike spend.
func throttledScope(scope, info string) Scope {
	switch i := strings.ToLower(strings.TrimSpace(info)); {
	case strings.Contains(i, "resourceunit"):
		return ScopeResourceUnits
	case strings.Contains(i, "invitation"):
		return ScopeInvitations
	case strings.Contains(i, "mailbox"):
		return ScopeMail
	case strings.Contains(i, "write"):
		return ScopeWrites
	}
	parts := strings.Split(strings.TrimSpace(scope), "/")
	if len(parts) < 2 {
		return ScopeUnknown
	}
	switch strings.ToLower(parts[1]) {
	case "write":
		return ScopeWrites
	case "read", "readwrite":
		return ScopeResourceUnits
	}
	return ScopeUnknown
}

// blame is the scope a 429 on a request of kind k is put down to: the one
// it names when the request spends it; otherwise the request's most
// specific scope but invitations, whose 429 without a scope pauses every
// write as it always has. Outlook's 429s are the mail budget's whatever
// they name: Outlook shares no budget with identity.
func blame(k Kind, named Scope) Scope {
	cs := charges[k]
	if len(cs) == 0 {
		return ScopeUnknown
	}
	if k == SendMail {
		return ScopeMail
	}
	for _, c := range cs {
		if c == named {
			return named
		}
	}
	if k == Invitation {
		return ScopeWrites
	}
	return cs[len(cs)-1]
}
