package throttle

import (
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/metrics"
	"github.com/guestflow/guestflow/internal/wire"
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

// retryAfter is the pause a 429 asks for, defaulting to a few seconds when
// it names none.
func retryAfter(v string) time.Duration {
	if d := wire.RetryAfter(v, time.Now()); d > 0 {
		return d
	}
	return 5 * time.Second
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
		_ = t.g.pause(req.Context(), key, retryAfter(resp.Header.Get("Retry-After")))
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
