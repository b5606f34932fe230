// Package wire reads and writes the conventions Microsoft's REST APIs share
// on the wire — Retry-After, request ids, OData string literals, GUIDs — so
// that the Graph, Dataverse and Power Platform clients and the throttle
// transports each read them one way.
package wire

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryAfter reads a Retry-After value, delta-seconds or an HTTP date (RFC
// 9110 §10.2.3), as the delay it asks for from now. It returns 0 when the
// value is absent, malformed or in the past, which callers read as "the
// service named no delay".
func RetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		// A day is far beyond anything Microsoft asks for; it also keeps
		// the multiplication from overflowing.
		return time.Duration(min(s, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// RequestID returns the id Microsoft support asks for: Graph's request-id,
// Dataverse's x-ms-service-request-id, or the admin API's
// x-ms-correlation-request-id, whichever the answer carries.
func RequestID(h http.Header) string {
	for _, k := range []string{"request-id", "x-ms-service-request-id", "x-ms-correlation-request-id"} {
		if v := h.Get(k); v != "" {
			return v
		}
	}
	return ""
}

// Literal quotes s as an OData string literal: in single quotes, with each
// quote in s written twice. Any value can be quoted, so a quoted value can
// never end the literal and change a $filter's meaning.
func Literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// GUID checks that s is a GUID in its 8-4-4-4-12 hex form. Values the APIs
// take unquoted (keys in a path, ids in a $filter) are checked with it
// first, so that they too cannot change a request's meaning.
func GUID(s string) error {
	const hex = "0123456789abcdefABCDEF"
	ok := len(s) == 36
	for i := 0; ok && i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			ok = s[i] == '-'
		default:
			ok = strings.IndexByte(hex, s[i]) >= 0
		}
	}
	if !ok {
		return fmt.Errorf("%q is not a GUID", s)
	}
	return nil
}
