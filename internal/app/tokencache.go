package app

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// tokenMargin is how long before a token expires it is fetched again, as
// azidentity does itself: a request signed with it must still reach
// Microsoft in time.
const tokenMargin = 5 * time.Minute

// cachedCredential hands out the last token for the same request until it
// is due for a refresh. azidentity caches too, but every call goes through
// MSAL's silent acquisition (authority, options, a cache lookup under a
// lock), which a worker pays on every Graph and Dataverse call: about 60
// µs each, a few percent of an onboarding's CPU. A request with claims
// (a Continuous Access Evaluation challenge) always goes to the
// credential, as do the calls while a token is being fetched: they wait
// for that one instead of asking Entra ID as well.
type cachedCredential struct {
	next azcore.TokenCredential
	now  func() time.Time

	mu     sync.Mutex
	tokens map[string]*cachedToken
}

type cachedToken struct {
	mu  sync.Mutex
	tok azcore.AccessToken
}

func newCachedCredential(next azcore.TokenCredential) *cachedCredential {
	return &cachedCredential{next: next, now: time.Now, tokens: map[string]*cachedToken{}}
}

func (c *cachedCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if o.Claims != "" {
		return c.next.GetToken(ctx, o)
	}
	key := o.TenantID + "\x00" + strings.Join(o.Scopes, " ")
	if o.EnableCAE {
		key += "\x00cae"
	}
	c.mu.Lock()
	t := c.tokens[key]
	if t == nil {
		t = &cachedToken{}
		c.tokens[key] = t
	}
	c.mu.Unlock()

	t.mu.Lock()
	defer t.mu.Unlock()
	if c.fresh(t.tok) {
		return t.tok, nil
	}
	tok, err := c.next.GetToken(ctx, o)
	if err != nil {
		return tok, err
	}
	t.tok = tok
	return tok, nil
}

// fresh reports whether tok may still be handed out.
func (c *cachedCredential) fresh(tok azcore.AccessToken) bool {
	if tok.Token == "" {
		return false
	}
	now := c.now()
	if !tok.RefreshOn.IsZero() && !now.Before(tok.RefreshOn) {
		return false
	}
	return now.Before(tok.ExpiresOn.Add(-tokenMargin))
}
