package httpclient

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/guestflow/guestflow/internal/metrics"
)

// Instrument wraps next so that every request is counted in
// guestflow_remote_requests_total and timed in
// guestflow_remote_request_duration_seconds, by the service and route
// template Route derives from it. It sits next to the network: a call the
// shared budget refused before sending (package throttle) is no request.
func Instrument(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return instrumented{next}
}

type instrumented struct{ next http.RoundTripper }

func (t instrumented) RoundTrip(req *http.Request) (*http.Response, error) {
	service, op := Route(req.Method, req.URL)
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	status := "error"
	if err == nil {
		status = strconv.Itoa(resp.StatusCode)
	}
	metrics.RemoteDuration.WithLabelValues(service, op).Observe(time.Since(start).Seconds())
	metrics.RemoteRequests.WithLabelValues(service, op, status).Inc()
	return resp, err
}

// Anchors: where in a path each service's own part begins. The part
// before is the deployment's (a Dataverse instance's path, the emulator's
// /instances/<name>), not the API's, and is left out of the operation.
const (
	anchorDataverse     = "/api/data/"
	anchorPowerPlatform = "/providers/microsoft.businessappplatform/"
	anchorGraph         = "/v1.0/"
)

// Route names the service a request goes to and its operation: the method
// and a route template of the path, such as
//
//	POST /v1.0/users/{id}/assignLicense
//	GET /api/data/v9.2/systemusers({id})/systemuserroles_association
//	POST /{tenant}/oauth2/v2.0/token
//
// The service is told by the path alone, because in the emulator every
// service shares one host: Dataverse's Web API lives below /api/data/, the
// Power Platform admin API below /providers/Microsoft.BusinessAppPlatform/,
// Graph below /v1.0/, and Entra ID's token endpoints end in
// /oauth2/v2.0/token (its OpenID discovery documents count as token calls
// too). Anything else is ("other", "other").
//
// The query string is never part of the operation, and every path segment
// that is not a literal of the API (see literal) becomes {id}: labels must
// not carry ids or addresses.
func Route(method string, u *url.URL) (service, operation string) {
	p := u.Path
	lower := strings.ToLower(p)
	switch {
	case strings.HasPrefix(lower, anchorGraph):
		return metrics.ServiceGraph, method + " " + template(p)
	case strings.Contains(lower, anchorDataverse):
		return metrics.ServiceDataverse, method + " " + template(p[strings.Index(lower, anchorDataverse):])
	case strings.Contains(lower, anchorPowerPlatform):
		return metrics.ServicePowerPlatform, method + " " + template(p[strings.Index(lower, anchorPowerPlatform):])
	case isToken(lower):
		// /{tenant}/oauth2/v2.0/token: the first segment is the tenant
		// (an id, a domain, "common" or "organizations").
		rest := strings.TrimPrefix(p, "/")
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			return metrics.ServiceToken, method + " /{tenant}" + template(rest[i:])
		}
		return metrics.ServiceToken, method + " /{tenant}"
	case strings.Contains(lower, anchorGraph): // a Graph URL with a path of its own
		return metrics.ServiceGraph, method + " " + template(p[strings.Index(lower, anchorGraph):])
	}
	return metrics.ServiceOther, metrics.ServiceOther
}

// isToken tells Entra ID's endpoints: the token endpoint, OpenID
// discovery and instance discovery, which the credential calls.
func isToken(lowerPath string) bool {
	return strings.Contains(lowerPath, "/oauth2/") || strings.Contains(lowerPath, "/.well-known/openid-configuration") ||
		strings.Contains(lowerPath, "/discovery/")
}

// template replaces every segment of p that is not a literal with {id},
// and the key of an OData entity segment, systemusers(<id>), with {id}.
func template(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if s == "" || literal(s) {
			continue
		}
		if open := strings.IndexByte(s, '('); open > 0 && strings.HasSuffix(s, ")") && literal(s[:open]) {
			segs[i] = s[:open] + "({id})"
			continue
		}
		segs[i] = "{id}"
	}
	return strings.Join(segs, "/")
}

// fixed are the literals that are not words.
var fixed = map[string]bool{
	"oauth2": true, ".well-known": true, "openid-configuration": true,
	"microsoft.businessappplatform": true,
}

func literal(s string) bool {
	return word(s) || version(s) || fixed[strings.ToLower(s)]
}

// word tells a literal of an API path: collections, navigation
// properties, actions and OData's $ref, a letter and up to 63 letters or
// underscores. Ids are not words: object and environment ids are GUIDs
// (digits and dashes), user principal names hold an @ (and often #EXT#),
// tenants are GUIDs or domains. (Byte loops rather than regular
// expressions: every Graph and Dataverse call is labelled.)
func word(s string) bool {
	s = strings.TrimPrefix(s, "$")
	if len(s) == 0 || len(s) > 64 || !letter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !letter(s[i]) && s[i] != '_' {
			return false
		}
	}
	return true
}

// version tells an API version segment: v1.0, v9.2, v2.0.
func version(s string) bool {
	rest, ok := strings.CutPrefix(s, "v")
	if !ok {
		return false
	}
	major, minor, dotted := strings.Cut(rest, ".")
	return digits(major) && (!dotted || digits(minor))
}

func letter(b byte) bool { return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' }

func digits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
