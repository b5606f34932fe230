package app

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// countingCredential hands out numbered tokens valid for an hour from now.
type countingCredential struct {
	now   func() time.Time
	calls int
	err   error
}

func (c *countingCredential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.calls++
	if c.err != nil {
		return azcore.AccessToken{}, c.err
	}
	return azcore.AccessToken{Token: o.Scopes[0] + "#" + string(rune('0'+c.calls)), ExpiresOn: c.now().Add(time.Hour)}, nil
}

func TestTheTokenCacheAsksOncePerTokenLife(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	next := &countingCredential{now: clock}
	c := newCachedCredential(next)
	c.now = clock
	ctx := context.Background()
	graph := policy.TokenRequestOptions{Scopes: []string{"https://graph.microsoft.com/.default"}}
	crm := policy.TokenRequestOptions{Scopes: []string{"https://org.crm.dynamics.com/.default"}}

	first, _ := c.GetToken(ctx, graph)
	for range 10 {
		if tok, err := c.GetToken(ctx, graph); err != nil || tok.Token != first.Token {
			t.Fatalf("GetToken = %q, %v; want the cached %q", tok.Token, err, first.Token)
		}
	}
	if next.calls != 1 {
		t.Fatalf("%d calls to the credential for one scope, want 1", next.calls)
	}
	if tok, _ := c.GetToken(ctx, crm); tok.Token == first.Token || next.calls != 2 {
		t.Fatalf("another scope got %q after %d calls: it must have a token of its own", tok.Token, next.calls)
	}
	// Within the margin of expiry: fetched again.
	now = now.Add(time.Hour - tokenMargin)
	if tok, _ := c.GetToken(ctx, graph); tok.Token == first.Token || next.calls != 3 {
		t.Fatalf("a token %s from expiry was handed out again (%q, %d calls)", tokenMargin, tok.Token, next.calls)
	}
	// A claims challenge always goes to the credential.
	claims := graph
	claims.Claims = `{"access_token":{"nbf":{"essential":true}}}`
	c.GetToken(ctx, claims)
	c.GetToken(ctx, claims)
	if next.calls != 5 {
		t.Fatalf("%d calls after two claims challenges, want 5", next.calls)
	}
}

func TestTheTokenCacheKeepsNoError(t *testing.T) {
	next := &countingCredential{now: time.Now, err: errors.New("AADSTS7000215: invalid client secret")}
	c := newCachedCredential(next)
	o := policy.TokenRequestOptions{Scopes: []string{"https://graph.microsoft.com/.default"}}
	for range 3 {
		if _, err := c.GetToken(context.Background(), o); err == nil {
			t.Fatal("no error from a failing credential")
		}
	}
	if next.calls != 3 {
		t.Fatalf("%d calls for 3 requests to a failing credential: an error must not be cached", next.calls)
	}
	next.err = nil
	if tok, err := c.GetToken(context.Background(), o); err != nil || tok.Token == "" {
		t.Fatalf("after the credential recovered: %q, %v", tok.Token, err)
	}
}
