package throttle

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Transport returns an http.RoundTripper that takes budget from g before
// every Graph identity write and pauses every worker when Graph answers a
// write with 429.
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
	if err := t.g.Acquire(req.Context(), k); err != nil {
		if req.Body != nil {
			req.Body.Close() // RoundTrip must close the body, even on error
		}
		return nil, err
	}
	resp, err := t.next.RoundTrip(req)
	if err == nil && k != Free && resp.StatusCode == http.StatusTooManyRequests {
		_ = t.g.Pause(req.Context(), retryAfter(resp.Header.Get("Retry-After")))
	}
	return resp, err
}

var (
	userPath   = regexp.MustCompile(`/v1\.0/users/[^/]+$`)
	assignPath = regexp.MustCompile(`/v1\.0/users/[^/]+/assignLicense$`)
	memberPath = regexp.MustCompile(`/v1\.0/groups/[^/]+/members/\$ref$`)
)

// KindOf says what a Graph request costs: the identity writes guestflow
// makes (invitations, user updates, license assignments, group member adds)
// or nothing (reads, sendMail, which has a budget of its own).
func KindOf(method, path string) Kind {
	switch {
	case method == http.MethodPost && strings.HasSuffix(path, "/v1.0/invitations"):
		return Invitation
	case method == http.MethodPatch && userPath.MatchString(path),
		method == http.MethodPost && (assignPath.MatchString(path) || memberPath.MatchString(path)):
		return Write
	}
	return Free
}

// retryAfter reads Retry-After seconds, defaulting to a few seconds when a
// 429 names none.
func retryAfter(v string) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 5 * time.Second
}
