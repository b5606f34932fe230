package wire

import (
	"net/http"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"  ", 0},
		{"7", 7 * time.Second},
		{" 3 ", 3 * time.Second},
		{"0", 0},
		{"-4", 0},
		{"1.5", 0},
		{"soon", 0},
		{"99999999999999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"Tue, 01 Dec 2026 09:00:30 GMT", 30 * time.Second},
		{"Tuesday, 01-Dec-26 09:00:30 GMT", 30 * time.Second}, // RFC 850, which ParseTime also accepts
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		if got := RetryAfter(c.in, now); got != c.want {
			t.Errorf("RetryAfter(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestRequestID(t *testing.T) {
	for _, c := range []struct {
		h    http.Header
		want string
	}{
		{http.Header{}, ""},
		{http.Header{"Request-Id": {"g"}}, "g"},
		{http.Header{"X-Ms-Service-Request-Id": {"d"}}, "d"},
		{http.Header{"X-Ms-Correlation-Request-Id": {"p"}}, "p"},
		{http.Header{"X-Ms-Correlation-Request-Id": {"p"}, "X-Ms-Service-Request-Id": {"d"}}, "d"},
	} {
		if got := RequestID(c.h); got != c.want {
			t.Errorf("RequestID(%v) = %q, want %q", c.h, got, c.want)
		}
	}
}

func TestLiteral(t *testing.T) {
	for in, want := range map[string]string{
		"":                      "''",
		"ana@fabrikam.com":      "'ana@fabrikam.com'",
		"liam.o'brien@x.com":    "'liam.o''brien@x.com'",
		"' or 1 eq 1 or 'a'eq'": "''' or 1 eq 1 or ''a''eq'''",
	} {
		if got := Literal(in); got != want {
			t.Errorf("Literal(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestGUID(t *testing.T) {
	for _, ok := range []string{"627090ff-40a3-4053-8790-584edc5be201", "627090FF-40A3-4053-8790-584EDC5BE201"} {
		if err := GUID(ok); err != nil {
			t.Errorf("GUID(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "627090ff40a3-4053-8790-584edc5be201-", "627090ff-40a3-4053-8790-584edc5be20g",
		"627090ff-40a3-4053-8790-584edc5be201 or 1 eq 1", "{627090ff-40a3-4053-8790-584edc5be201}", "627090ff-40a3-4053-8790_584edc5be201"} {
		if err := GUID(bad); err == nil {
			t.Errorf("GUID(%q) accepted it", bad)
		}
	}
}
