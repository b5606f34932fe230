package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// FirstToken is the readiness check "the app's identity works": it passes
// once the credential BuildSteps built has produced a token, for a step or
// for the check itself, and from then on. A worker that has had nothing to
// do yet has asked for no token, and a rolling update waits for its pods
// to be ready: so until then each Check asks Entra ID for a Graph token in
// the background (one request at a time) and reports the last failure,
// e.g. a wrong client secret.
//
// The zero value is ready to be handed to BuildSteps (StepOptions.Token).
type FirstToken struct {
	got atomic.Bool

	mu     sync.Mutex
	cred   azcore.TokenCredential
	scope  string
	asking bool
	last   error
}

// firstTokenTimeout bounds the check's own request for a token.
const firstTokenTimeout = 30 * time.Second

// Check reports nil once a token was obtained; ctx is not used, as the
// request it makes outlives one probe.
func (f *FirstToken) Check(context.Context) error {
	if f.got.Load() {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cred == nil {
		return errors.New("no credential yet: the steps are not built")
	}
	if !f.asking {
		f.asking = true
		go f.ask()
	}
	if f.last != nil {
		return fmt.Errorf("no token yet: %w", f.last)
	}
	return errors.New("no token yet: asking Entra ID for one")
}

func (f *FirstToken) ask() {
	ctx, cancel := context.WithTimeout(context.Background(), firstTokenTimeout)
	defer cancel()
	_, err := f.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{f.scope}})
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asking = false
	if err != nil && !f.got.Load() {
		f.last = err
	}
}

// failed remembers a step's failure to get a token, for Check to report.
func (f *FirstToken) failed(err error) {
	if f.got.Load() {
		return
	}
	f.mu.Lock()
	f.last = err
	f.mu.Unlock()
}

// watch returns cred recording into f, and lets f ask cred for scope.
func (f *FirstToken) watch(cred azcore.TokenCredential, scope string) azcore.TokenCredential {
	w := &watched{TokenCredential: cred, f: f}
	f.mu.Lock()
	f.cred, f.scope = w, scope
	f.mu.Unlock()
	return w
}

type watched struct {
	azcore.TokenCredential
	f *FirstToken
}

func (w *watched) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := w.TokenCredential.GetToken(ctx, o)
	if err == nil {
		w.f.got.Store(true)
		return tok, nil
	}
	w.f.failed(err)
	return tok, err
}
