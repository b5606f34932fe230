package throttle_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guestflow/guestflow/internal/graphsim"
	"github.com/guestflow/guestflow/internal/throttle"
)

// TestPacerFindsTheEmulatorsBudget: three workers, each with its own gate
// over one broker, write to the emulator as fast as the pacer lets them,
// told nothing of its budget of 40 writes a second (more than twice the
// rate the pacer starts from). Within seconds the shared rate settles
// near the budget and the writes go at it, with few 429s. (The benchmark holds the real targets; the bounds here are loose,
// as the machine may be busy.)
func TestPacerFindsTheEmulatorsBudget(t *testing.T) {
	const budget = 40
	sim, err := graphsim.New(graphsim.Options{WriteLimit: graphsim.Limit{N: budget, Per: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	base := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: sim.CertPool()}}
	token := graphToken(t, sim, base)

	gs := gates(t, 3, throttle.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	var ok, throttled, handedBack atomic.Int64
	var wg sync.WaitGroup
	for i := range 24 {
		client := &http.Client{Transport: gs[i%len(gs)].Transport(base)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				body := strings.NewReader(`{"usageLocation": "PT"}`)
				req, _ := http.NewRequestWithContext(ctx, "PATCH", sim.URL()+"/v1.0/users/"+graphsim.MeganUserID, body)
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				switch {
				case err != nil && ctx.Err() != nil:
					return
				case err != nil:
					// Handed back by the pacer: the broker would bring
					// the input back later; take the next one.
					handedBack.Add(1)
					time.Sleep(5 * time.Millisecond)
					continue
				case resp.StatusCode == http.StatusTooManyRequests:
					throttled.Add(1)
				case resp.StatusCode < 300:
					ok.Add(1)
				default:
					t.Errorf("PATCH: %s", resp.Status)
				}
				resp.Body.Close()
			}
		}()
	}
	if os.Getenv("PACER_TRACE") != "" {
		go func() {
			for ctx.Err() == nil {
				time.Sleep(100 * time.Millisecond)
				st, _ := gs[0].State(context.Background(), throttle.ScopeWrites)
				t.Logf("trace %s ok %d 429s %d", st, ok.Load(), throttled.Load())
			}
		}()
	}
	// The last three seconds are the settled ones.
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
	}
	before := ok.Load()
	wg.Wait()
	settled := float64(ok.Load()-before) / 3
	rate, err := gs[0].Rate(context.Background(), throttle.ScopeWrites)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d writes, %d 429s, %d handed back; %.1f writes/s over the last 3s; shared rate %.1f/s", ok.Load(), throttled.Load(), handedBack.Load(), settled, rate)
	if rate < 0.8*budget || rate > 1.1*budget {
		t.Errorf("shared rate %.1f/s, want within 80–110 %% of the budget of %d/s", rate, budget)
	}
	if settled < 0.6*budget || settled > 1.05*budget {
		t.Errorf("%.1f writes/s once settled, want near the budget of %d/s", settled, budget)
	}
	if share := float64(throttled.Load()) / float64(ok.Load()+throttled.Load()); share > 0.05 {
		t.Errorf("%.1f %% of writes got 429, want at most 5 %%", 100*share)
	}
}

func graphToken(t *testing.T, sim *graphsim.Sim, rt http.RoundTripper) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {graphsim.DefaultClientID},
		"client_secret": {graphsim.DefaultClientSecret}, "scope": {sim.URL() + "/.default"}}
	resp, err := (&http.Client{Transport: rt}).Post(fmt.Sprintf("%s/%s/oauth2/v2.0/token", sim.URL(), graphsim.DefaultTenantID),
		"application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token: %s %v", resp.Status, err)
	}
	return tok.AccessToken
}
