package dlq

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Steps are the steps that dead-letter, in flow order (docs/events.md).
var Steps = []string{"invite", "license", "role", "notify"}

// Filter selects dead letters. Every set field must match; a list matches
// when any of its values does. The zero Filter matches every dead letter.
type Filter struct {
	// Seqs are explicit DLQ stream sequences.
	Seqs          []uint64
	Steps         []string
	Reasons       []string
	OnboardingIDs []string
	// Since and Until bound Guestflow-Failed-At: at or after Since, before
	// Until.
	Since, Until time.Time
}

// Empty reports whether f matches every dead letter.
func (f Filter) Empty() bool {
	return len(f.Seqs) == 0 && len(f.Steps) == 0 && len(f.Reasons) == 0 && len(f.OnboardingIDs) == 0 &&
		f.Since.IsZero() && f.Until.IsZero()
}

// Validate rejects a filter that can only be a typo: an unknown step, or a
// time window that ends before it starts.
func (f Filter) Validate() error {
	var errs []error
	for _, s := range f.Steps {
		if !slices.Contains(Steps, s) {
			errs = append(errs, fmt.Errorf("unknown step %q (steps: %s)", s, strings.Join(Steps, ", ")))
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		errs = append(errs, fmt.Errorf("--since %s is not before --until %s",
			f.Since.Format(time.RFC3339), f.Until.Format(time.RFC3339)))
	}
	return errors.Join(errs...)
}

// Match reports whether l passes f.
func (f Filter) Match(l Letter) bool {
	return anyOf(f.Seqs, l.Seq) && anyOf(f.Steps, l.Step) && anyOf(f.Reasons, l.Reason) &&
		anyOf(f.OnboardingIDs, l.OnboardingID) &&
		(f.Since.IsZero() || !l.FailedAt.Before(f.Since)) &&
		(f.Until.IsZero() || l.FailedAt.Before(f.Until))
}

func anyOf[T comparable](want []T, v T) bool { return len(want) == 0 || slices.Contains(want, v) }

// String describes f for messages such as "no dead letters match …".
func (f Filter) String() string {
	var parts []string
	list := func(name string, vs []string) {
		if len(vs) > 0 {
			parts = append(parts, name+" "+strings.Join(vs, " or "))
		}
	}
	var seqs []string
	for _, s := range f.Seqs {
		seqs = append(seqs, strconv.FormatUint(s, 10))
	}
	list("sequence", seqs)
	list("step", f.Steps)
	list("reason", f.Reasons)
	list("onboarding", f.OnboardingIDs)
	if !f.Since.IsZero() {
		parts = append(parts, "failed since "+f.Since.UTC().Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		parts = append(parts, "failed before "+f.Until.UTC().Format(time.RFC3339))
	}
	if len(parts) == 0 {
		return "all dead letters"
	}
	return strings.Join(parts, ", ")
}

// ParseTime reads a --since / --until value: an RFC 3339 time, a date
// (midnight UTC), or a duration meaning "that long before now" (Go
// durations such as 90m or 2h30m, plus whole days such as 7d).
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		days, derr := strconv.Atoi(strings.TrimSuffix(s, "d"))
		if !strings.HasSuffix(s, "d") || derr != nil {
			return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2006-01-02T15:04:05Z), a date, nor a duration such as 2h or 7d", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	}
	if d < 0 {
		return time.Time{}, fmt.Errorf("%q: a duration means \"that long ago\" and must not be negative", s)
	}
	return now.Add(-d), nil
}

// ParseSeqs reads DLQ stream sequences given as arguments.
func ParseSeqs(args []string) ([]uint64, error) {
	var seqs []uint64
	var errs []error
	for _, a := range args {
		n, err := strconv.ParseUint(strings.TrimSpace(a), 10, 64)
		if err != nil || n == 0 {
			errs = append(errs, fmt.Errorf("%q is not a dead letter's sequence (a positive number, as 'guestflow dlq list' shows)", a))
			continue
		}
		if !slices.Contains(seqs, n) {
			seqs = append(seqs, n)
		}
	}
	return seqs, errors.Join(errs...)
}
