package app_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guestflow/guestflow/internal/app"
	"github.com/guestflow/guestflow/internal/broker/brokertest"
	"github.com/guestflow/guestflow/internal/graphsim"
)

// TestBuildStepsHandsTheCredentialToFirstToken: the check asks the tenant's
// authority for a Graph token with the steps' credential, and reports why
// Entra refused one.
func TestBuildStepsHandsTheCredentialToFirstToken(t *testing.T) {
	sim, err := graphsim.New(graphsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	cfg := sim.Config()
	cfg.Tenant.CAFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(cfg.Tenant.CAFile, sim.CAPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	js := brokertest.JetStream(t, brokertest.URL(t))
	for _, tc := range []struct {
		secret, want string
	}{{graphsim.DefaultClientSecret, ""}, {"wrong", "invalid_client"}} {
		ft := &app.FirstToken{}
		creds := app.Credentials{ClientID: graphsim.DefaultClientID, ClientSecret: tc.secret}
		if _, err := app.BuildSteps(context.Background(), cfg, creds, js, []string{"license"}, app.StepOptions{Token: ft}); err != nil {
			t.Fatal(err)
		}
		var last error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			last = ft.Check(context.Background())
			if tc.want == "" && last == nil || tc.want != "" && last != nil && strings.Contains(last.Error(), tc.want) {
				break
			}
		}
		if tc.want == "" && last != nil {
			t.Errorf("secret %q: not ready: %v", tc.secret, last)
		}
		if tc.want != "" && (last == nil || !strings.Contains(last.Error(), tc.want)) {
			t.Errorf("secret %q: %v, want an error naming %s", tc.secret, last, tc.want)
		}
	}
}
