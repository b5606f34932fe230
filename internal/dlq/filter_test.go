package dlq_test

import (
	"strings"
	"testing"
	"time"

	"github.com/guestflow/guestflow/internal/dlq"
)

func TestDLQParseTime(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in      string
		want    time.Time
		wantErr string
	}{
		{in: "2026-03-01T09:30:00Z", want: time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)},
		{in: "2026-03-01T10:30:00+01:00", want: time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)},
		{in: "2026-03-01", want: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
		{in: "2h", want: now.Add(-2 * time.Hour)},
		{in: " 90m ", want: now.Add(-90 * time.Minute)},
		{in: "7d", want: now.Add(-7 * 24 * time.Hour)},
		{in: "-2h", wantErr: "must not be negative"},
		{in: "yesterday", wantErr: "neither an RFC 3339 time"},
		{in: "d", wantErr: "neither an RFC 3339 time"},
		{in: "2026-13-01", wantErr: "neither an RFC 3339 time"},
	} {
		got, err := dlq.ParseTime(tc.in, now)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseTime(%q) = %v, %v; want error with %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestDLQParseSeqs(t *testing.T) {
	got, err := dlq.ParseSeqs([]string{"3", "17", "3"})
	if err != nil || len(got) != 2 || got[0] != 3 || got[1] != 17 {
		t.Errorf("ParseSeqs = %v, %v; want [3 17]", got, err)
	}
	_, err = dlq.ParseSeqs([]string{"0", "seven", "4"})
	if err == nil || !strings.Contains(err.Error(), `"0"`) || !strings.Contains(err.Error(), `"seven"`) {
		t.Errorf("ParseSeqs of bad arguments: %v; want both named", err)
	}
}

func TestDLQFilterMatch(t *testing.T) {
	l := dlq.Letter{Seq: 7, Step: "license", Reason: "no_license_seats", OnboardingID: "ob-1",
		FailedAt: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	at := l.FailedAt
	for _, tc := range []struct {
		name string
		f    dlq.Filter
		want bool
	}{
		{"zero filter", dlq.Filter{}, true},
		{"sequence", dlq.Filter{Seqs: []uint64{3, 7}}, true},
		{"other sequence", dlq.Filter{Seqs: []uint64{3}}, false},
		{"step", dlq.Filter{Steps: []string{"license"}}, true},
		{"one of two steps", dlq.Filter{Steps: []string{"role", "license"}}, true},
		{"other step", dlq.Filter{Steps: []string{"role"}}, false},
		{"reason", dlq.Filter{Reasons: []string{"no_license_seats"}}, true},
		{"other reason", dlq.Filter{Reasons: []string{"unknown_sku"}}, false},
		{"onboarding", dlq.Filter{OnboardingIDs: []string{"ob-1"}}, true},
		{"other onboarding", dlq.Filter{OnboardingIDs: []string{"ob-2"}}, false},
		{"since is inclusive", dlq.Filter{Since: at}, true},
		{"since later", dlq.Filter{Since: at.Add(time.Second)}, false},
		{"until is exclusive", dlq.Filter{Until: at}, false},
		{"until later", dlq.Filter{Until: at.Add(time.Second)}, true},
		{"every field", dlq.Filter{Seqs: []uint64{7}, Steps: []string{"license"}, Reasons: []string{"no_license_seats"},
			OnboardingIDs: []string{"ob-1"}, Since: at.Add(-time.Hour), Until: at.Add(time.Hour)}, true},
		{"all but one field", dlq.Filter{Steps: []string{"license"}, Reasons: []string{"no_license_seats"},
			OnboardingIDs: []string{"ob-2"}}, false},
	} {
		if got := tc.f.Match(l); got != tc.want {
			t.Errorf("%s: Match = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDLQFilterValidate(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	err := dlq.Filter{Steps: []string{"licence"}, Since: at, Until: at}.Validate()
	if err == nil || !strings.Contains(err.Error(), `unknown step "licence" (steps: invite, license, role, notify)`) ||
		!strings.Contains(err.Error(), "is not before --until") {
		t.Errorf("Validate = %v; want the step and the window named", err)
	}
	if err := (dlq.Filter{Steps: dlq.Steps, Since: at, Until: at.Add(time.Second)}).Validate(); err != nil {
		t.Errorf("a good filter: %v", err)
	}
}

func TestDLQFilterString(t *testing.T) {
	if s := (dlq.Filter{}).String(); s != "all dead letters" {
		t.Errorf("zero filter: %q", s)
	}
	f := dlq.Filter{Steps: []string{"license", "role"}, Reasons: []string{"no_license_seats"},
		Since: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	if s, want := f.String(), "step license or role, reason no_license_seats, failed since 2026-03-01T09:00:00Z"; s != want {
		t.Errorf("String = %q, want %q", s, want)
	}
}
