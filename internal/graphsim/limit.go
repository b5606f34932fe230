package graphsim

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limit is a budget of N requests per window Per, as Microsoft states its
// throttling limits ("3,000 requests per 2.5 minutes"). The zero value is
// unlimited. *Limit implements flag.Value and pflag.Value.
type Limit struct {
	N   int
	Per time.Duration
}

// ParseLimit reads "N/DURATION" such as "3000/150s" or "150/5s"; a bare unit
// counts as one ("20/s"). The empty string is unlimited.
func ParseLimit(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Limit{}, nil
	}
	n, per, ok := strings.Cut(s, "/")
	if !ok {
		return Limit{}, fmt.Errorf("limit %q: want N/DURATION, such as 3000/150s", s)
	}
	count, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || count <= 0 {
		return Limit{}, fmt.Errorf("limit %q: %q is not a positive whole number of requests", s, n)
	}
	per = strings.TrimSpace(per)
	if per != "" && (per[0] < '0' || per[0] > '9') && per[0] != '.' {
		per = "1" + per
	}
	d, err := time.ParseDuration(per)
	if err != nil || d <= 0 {
		return Limit{}, fmt.Errorf("limit %q: %q is not a positive duration such as 150s or 5m", s, per)
	}
	return Limit{N: count, Per: d}, nil
}

// Unlimited reports whether the limit budgets nothing.
func (l Limit) Unlimited() bool { return l.N <= 0 || l.Per <= 0 }

// String formats the limit the way ParseLimit reads it.
func (l Limit) String() string {
	if l.Unlimited() {
		return ""
	}
	return fmt.Sprintf("%d/%s", l.N, l.Per)
}

// Set parses s into l, for flag packages.
func (l *Limit) Set(s string) error {
	v, err := ParseLimit(s)
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// Type names the flag value type in pflag's help output.
func (l *Limit) Type() string { return "N/DURATION" }
