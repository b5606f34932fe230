package throttle

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"
)

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestReadSignal(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name   string
		status int
		h      http.Header
		want   Signal
	}{
		{"plain answer", 200, header(), Signal{}},
		{"resource units", 200, header(HeaderResourceUnit, "2"), Signal{ResourceUnits: 2}},
		{"near the limit", 204, header(HeaderResourceUnit, "1", HeaderLimitPercentage, "0.85"), Signal{ResourceUnits: 1, Percentage: 0.85}},
		{"full", 201, header(HeaderLimitPercentage, "1"), Signal{Percentage: 1}},
		{"garbage", 200, header(HeaderResourceUnit, "-3", HeaderLimitPercentage, "much"), Signal{}},
		{"write limit (app)", 429, header("Retry-After", "2", HeaderThrottleScope, "Tenant_Application/Write/app/tenant", HeaderThrottleInfo, "WriteLimitExceeded", HeaderLimitPercentage, "1.02"),
			Signal{Throttled: true, RetryAfter: 2 * time.Second, Scope: ScopeWrites, Percentage: 1.02}},
		{"write limit (tenant)", 429, header("Retry-After", "1", HeaderThrottleScope, "Tenant/Write/app/tenant", HeaderThrottleInfo, "WriteLimitExceeded"),
			Signal{Throttled: true, RetryAfter: time.Second, Scope: ScopeWrites}},
		{"invitations", 429, header("Retry-After", "3", HeaderThrottleScope, "Tenant/Write/app/tenant", HeaderThrottleInfo, "InvitationLimitExceeded"),
			Signal{Throttled: true, RetryAfter: 3 * time.Second, Scope: ScopeInvitations}},
		{"resource units", 429, header("Retry-After", "1", HeaderThrottleScope, "Tenant_Application/ReadWrite/app/tenant", HeaderThrottleInfo, "ResourceUnitLimitExceeded"),
			Signal{Throttled: true, RetryAfter: time.Second, Scope: ScopeResourceUnits}},
		{"mailbox", 429, header("Retry-After", "1", HeaderThrottleScope, "Application/ReadWrite/app/user", HeaderThrottleInfo, "MailboxConcurrencyLimitExceeded"),
			Signal{Throttled: true, RetryAfter: time.Second, Scope: ScopeMail}},
		{"an information of its own, scope Write", 429, header("Retry-After", "1", HeaderThrottleScope, "Tenant_Application/Write/a/t", HeaderThrottleInfo, "CPULimitExceeded"),
			Signal{Throttled: true, RetryAfter: time.Second, Scope: ScopeWrites}},
		{"an information of its own, scope ReadWrite", 429, header("Retry-After", "1", HeaderThrottleScope, "Tenant_Application/ReadWrite/a/t", HeaderThrottleInfo, "CPULimitExceeded"),
			Signal{Throttled: true, RetryAfter: time.Second, Scope: ScopeResourceUnits}},
		{"no scope, no Retry-After", 429, header(), Signal{Throttled: true, RetryAfter: 5 * time.Second}},
	}
	for _, tt := range tests {
		if got := ReadSignal(tt.status, tt.h, now); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestBlame(t *testing.T) {
	tests := []struct {
		k     Kind
		named Scope
		want  Scope
	}{
		{Write, ScopeWrites, ScopeWrites},
		{Write, ScopeResourceUnits, ScopeResourceUnits},
		{Write, ScopeUnknown, ScopeWrites},
		{Write, ScopeInvitations, ScopeWrites}, // a write spends no invitation
		{Invitation, ScopeInvitations, ScopeInvitations},
		{Invitation, ScopeUnknown, ScopeWrites}, // as the pacer always paused
		{Read, ScopeUnknown, ScopeResourceUnits},
		{Read, ScopeWrites, ScopeResourceUnits},
		{SendMail, ScopeResourceUnits, ScopeMail}, // Outlook's are the mail budget's
		{Free, ScopeWrites, ScopeUnknown},
	}
	for _, tt := range tests {
		if got := blame(tt.k, tt.named); got != tt.want {
			t.Errorf("blame(%v, %v) = %v, want %v", tt.k, tt.named, got, tt.want)
		}
	}
}

// TestAttribution: a percentage goes to the most general scope whose
// other calls show as much.
func TestAttribution(t *testing.T) {
	const interval = int64(DefaultInterval)
	t.Run("the invitation budget", func(t *testing.T) {
		var s signals
		s.answered(Read, 0.82, 1, interval)
		s.answered(Write, 0, 2, interval)
		if got := s.answered(Invitation, 1, 3, interval); got != ScopeInvitations {
			t.Errorf("invitation at 1 with writes at none and reads at 0.82: %v, want invitations", got)
		}
		if got := s.answered(Write, 0.82, 4, interval); got != ScopeResourceUnits {
			t.Errorf("write at 0.82 with reads at 0.82: %v, want resource units", got)
		}
	})
	t.Run("the write budget", func(t *testing.T) {
		var s signals
		s.answered(Write, 1, 1, interval)
		if got := s.answered(Invitation, 1, 2, interval); got != ScopeWrites {
			t.Errorf("invitation at 1 with writes at 1: %v, want writes", got)
		}
		if got := s.answered(Write, 0.95, 3, interval); got != ScopeWrites {
			t.Errorf("write at 0.95 without reads showing it: %v, want writes", got)
		}
	})
	t.Run("no other writes answered", func(t *testing.T) {
		var s signals
		if got := s.answered(Invitation, 0.95, 1, interval); got != ScopeWrites {
			t.Errorf("invitation at 0.95 before any other write: %v, want writes (it cannot be told apart)", got)
		}
	})
	t.Run("the previous interval counts, older ones do not", func(t *testing.T) {
		var s signals
		s.answered(Read, 0.9, 1, interval)
		if got := s.answered(Write, 0.9, 1+interval, interval); got != ScopeResourceUnits {
			t.Errorf("write at 0.9 an interval after reads at 0.9: %v, want resource units", got)
		}
		if got := s.answered(Write, 0.9, 1+3*interval, interval); got != ScopeWrites {
			t.Errorf("write at 0.9 three intervals after reads at 0.9: %v, want writes", got)
		}
	})
}

func TestCostIsRememberedPerRoute(t *testing.T) {
	g := newGate(newMemStore(), Options{}, time.Now)
	u := func(s string) *url.URL { v, _ := url.Parse(s); return v }
	key, ru := g.cost(Read, u("https://graph.example/v1.0/users/6f1c/licenseDetails"))
	if ru != 1 {
		t.Fatalf("first estimate %d, want 1", ru)
	}
	g.costs.Store(key, 2)
	if k2, ru := g.cost(Read, u("https://graph.example/v1.0/users/93ab/licenseDetails")); k2 != key || ru != 2 {
		t.Errorf("another user's licenseDetails: %q %d, want %q 2", k2, ru, key)
	}
	if k3, _ := g.cost(Read, u("https://graph.example/v1.0/users/93ab/licenseDetails?$select=skuId")); k3 == key {
		t.Error("$select, which changes the cost, shares the route's key")
	}
	if k4, _ := g.cost(Write, u("https://graph.example/v1.0/users/93ab")); k4 == key {
		t.Error("a write shares a read's key")
	}
}

// TestA429ThatNamesNoBudget: an unscoped 429 on a read pauses nobody and
// slows nothing (every call spends resource units: one such answer must
// not stop them all); on a write it pauses the writes, as it always did,
// and slows nothing; a 429 that names a budget pauses and slows it.
func TestA429ThatNamesNoBudget(t *testing.T) {
	unscoped := Signal{Throttled: true, RetryAfter: 2 * time.Second}
	scoped := Signal{Throttled: true, RetryAfter: 2 * time.Second, Scope: ScopeResourceUnits}
	rate := func(g *Gate, s Scope) float64 {
		st, _, err := g.load(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		return st.Rate
	}
	for _, tc := range []struct {
		name      string
		k         Kind
		sig       Signal
		paused    Scope // ScopeUnknown: none
		slowed    bool
		slowScope Scope
	}{
		{"unscoped read", Read, unscoped, ScopeUnknown, false, ScopeResourceUnits},
		{"unscoped write", Write, unscoped, ScopeWrites, false, ScopeWrites},
		{"scoped read", Read, scoped, ScopeResourceUnits, true, ScopeResourceUnits},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGate(newMemStore(), Options{}, time.Now)
			// A write gives the writes a state; the resource units, lazy,
			// have none until a sign of filling, and would be paced from
			// Start.
			if _, _, _, err := g.reserveBatch(context.Background(), Write, []int{1}, time.Second, time.Second, false); err != nil {
				t.Fatal(err)
			}
			before := rate(g, tc.slowScope)
			if before == 0 {
				before = g.ctl[tc.slowScope].Start
			}
			g.observe(context.Background(), tc.k, "", 0, tc.sig)
			for _, s := range []Scope{ScopeResourceUnits, ScopeWrites} {
				if p := g.pausedFor(scopeInfos[s].pause); (p > 0) != (s == tc.paused) {
					t.Errorf("%v paused for %s after the 429, want paused: %v", s, p, s == tc.paused)
				}
			}
			if after := rate(g, tc.slowScope); (after > 0 && after < before) != tc.slowed {
				t.Errorf("%v's rate %v → %v, want slowed: %v", tc.slowScope, before, after, tc.slowed)
			}
		})
	}
}
