package app

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// flaky fails until told to succeed, and counts its calls.
type flaky struct {
	mu     sync.Mutex
	ok     bool
	calls  int
	scopes []string
}

func (f *flaky) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.scopes = o.Scopes
	if !f.ok {
		return azcore.AccessToken{}, errors.New("AADSTS7000215: invalid client secret")
	}
	return azcore.AccessToken{Token: "t", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func (f *flaky) set(ok bool) { f.mu.Lock(); f.ok = ok; f.mu.Unlock() }

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFirstTokenAsksUntilItHasOne: an idle worker gets ready by the check's
// own request; a failure is reported until a token comes, and once one
// came the check passes for good.
func TestFirstTokenAsksUntilItHasOne(t *testing.T) {
	var ft FirstToken
	if err := ft.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "not built") {
		t.Fatalf("before BuildSteps: %v", err)
	}
	cred := &flaky{}
	ft.watch(cred, "https://graph.example/.default")
	if err := ft.Check(context.Background()); err == nil {
		t.Fatal("ready before any token")
	}
	eventually(t, "the check reports the credential's failure", func() bool {
		err := ft.Check(context.Background())
		return err != nil && strings.Contains(err.Error(), "invalid client secret")
	})
	if cred.scopes[0] != "https://graph.example/.default" {
		t.Errorf("asked for %v", cred.scopes)
	}
	cred.set(true)
	eventually(t, "ready once a token came", func() bool { return ft.Check(context.Background()) == nil })
	cred.set(false)
	calls := cred.calls
	for range 3 {
		if err := ft.Check(context.Background()); err != nil {
			t.Fatalf("a later failure made it unready: %v", err)
		}
	}
	if cred.calls != calls {
		t.Error("the check kept asking for tokens after it had one")
	}
}

// TestFirstTokenSeesTheStepsTokens: a token a step got is enough; the check
// asks for none of its own.
func TestFirstTokenSeesTheStepsTokens(t *testing.T) {
	var ft FirstToken
	cred := &flaky{ok: true}
	stepCred := ft.watch(cred, "https://graph.example/.default")
	if _, err := stepCred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://sales.example/.default"}}); err != nil {
		t.Fatal(err)
	}
	if err := ft.Check(context.Background()); err != nil {
		t.Fatalf("not ready after a step's token: %v", err)
	}
	if cred.calls != 1 {
		t.Errorf("%d token requests, want the step's only", cred.calls)
	}
}
