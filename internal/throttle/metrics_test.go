package throttle_test

import (
	"context"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/metrics"
	"github.com/guestflow/guestflow/internal/throttle"
)

// waitSeconds reads guestflow_throttle_wait_seconds_total{scope}.
func waitSeconds(scope string) float64 {
	return testutil.ToFloat64(metrics.ThrottleWait.WithLabelValues(scope))
}

// TestWaitsAreCounted: a pacing wait slept in place counts what was
// slept, and a wait handed back counts the Retry-After the caller was
// told, under the scope of the budget that said so.
func TestWaitsAreCounted(t *testing.T) {
	g := gates(t, 1, throttle.Options{Static: true, WriteRate: 5, InviteRate: 1, MaxWait: 300 * time.Millisecond})[0]
	ctx := context.Background()

	before := waitSeconds(metrics.ScopeWrite)
	for range 2 { // the second write sleeps 200 ms for its slot
		if err := g.Acquire(ctx, throttle.Write); err != nil {
			t.Fatal(err)
		}
	}
	if got := waitSeconds(metrics.ScopeWrite) - before; got < 0.15 || got > 0.25 {
		t.Errorf("write wait counted %.3fs, want the ~0.2s slept", got)
	}

	before = waitSeconds(metrics.ScopeInvitation)
	if err := g.Acquire(ctx, throttle.Invitation); err != nil {
		t.Fatal(err)
	}
	err := g.Acquire(ctx, throttle.Invitation) // 1/s: told to come back
	v := failure.Classify(err)
	if v.Reason != failure.Throttled {
		t.Fatalf("second invitation at 1/s: %v", err)
	}
	if got := waitSeconds(metrics.ScopeInvitation) - before; math.Abs(got-v.After.Seconds()) > 0.001 {
		t.Errorf("invitation wait counted %.3fs, want the %s the caller was told", got, v.After)
	}

	before = waitSeconds(metrics.ScopeWrite)
	if err := g.Pause(ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	v = failure.Classify(g.Acquire(ctx, throttle.Write))
	if got := waitSeconds(metrics.ScopeWrite) - before; v.After <= 0 || math.Abs(got-v.After.Seconds()) > 0.001 {
		t.Errorf("paused write: counted %.3fs, told to wait %s", got, v.After)
	}
}

func TestDataversePauseIsCounted(t *testing.T) {
	g := gates(t, 1, throttle.Options{})[0]
	rt := g.DataverseTransport(roundTripFunc(func(*http.Request) (*http.Response, error) {
		h := http.Header{}
		h.Set("Retry-After", "3")
		return &http.Response{StatusCode: http.StatusTooManyRequests, Header: h, Body: http.NoBody}, nil
	}))
	req, _ := http.NewRequest("GET", "https://org.crm4.dynamics.com/api/data/v9.2/roles", nil)
	if _, err := rt.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	before := waitSeconds(metrics.ScopeDataverse)
	_, err := rt.RoundTrip(req.Clone(context.Background()))
	v := failure.Classify(err)
	if got := waitSeconds(metrics.ScopeDataverse) - before; v.After < 2*time.Second || math.Abs(got-v.After.Seconds()) > 0.001 {
		t.Errorf("paused Dataverse call: counted %.3fs, told to wait %s (%v)", got, v.After, err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
