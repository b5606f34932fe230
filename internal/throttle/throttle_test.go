package throttle_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guestflow/guestflow/internal/broker/brokertest"
	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/throttle"
)

// gates opens n gates on one broker, each over its own connection, like
// replicas that share nothing but NATS.
func gates(t *testing.T, n int, o throttle.Options) []*throttle.Gate {
	t.Helper()
	url := brokertest.URL(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var out []*throttle.Gate
	for range n {
		g, err := throttle.Open(ctx, brokertest.JetStream(t, url), o)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, g)
	}
	return out
}

func TestSharedRateHoldsAcrossReplicas(t *testing.T) {
	const rate, n = 200.0, 120
	gs := gates(t, 3, throttle.Options{Static: true, WriteRate: rate, MaxWait: 5 * time.Second})
	var mu sync.Mutex
	var times []time.Time
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := gs[i%len(gs)].Acquire(context.Background(), throttle.Write); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			times = append(times, time.Now())
			mu.Unlock()
		}()
	}
	wg.Wait()
	if elapsed := time.Since(start); elapsed < time.Duration(float64(n-1)/rate*float64(time.Second))*9/10 {
		t.Errorf("%d writes at %.0f/s took only %s across three replicas", n, rate, elapsed)
	}
	// No quarter second may hold more than the rate allows, give or take
	// the slack of timers on a loaded machine (a late wake-up moves a
	// write into the next window).
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	const window, allowed = 250 * time.Millisecond, int(rate/4*1.2) + 2
	for i := range times {
		j := i
		for j < len(times) && times[j].Sub(times[i]) < window {
			j++
		}
		if j-i > allowed {
			t.Fatalf("%d writes within %s at %s, want at most %d", j-i, window, times[i].Sub(start), allowed)
		}
	}
}

func TestLongWaitIsHandedBack(t *testing.T) {
	g := gates(t, 1, throttle.Options{Static: true, WriteRate: 1, MaxWait: 100 * time.Millisecond})[0]
	if err := g.Acquire(context.Background(), throttle.Write); err != nil {
		t.Fatal(err)
	}
	err := g.Acquire(context.Background(), throttle.Write)
	v := failure.Classify(err)
	if err == nil || !v.Retryable || v.Reason != failure.Throttled || v.After < 900*time.Millisecond || v.After > 1200*time.Millisecond {
		t.Fatalf("second write at 1/s: %v (verdict %+v), want a throttled retry after ~1s", err, v)
	}
	if err := g.Acquire(context.Background(), throttle.Read); err != nil {
		t.Errorf("the static pacer budgets no reads: %v", err)
	}
}

func TestPauseReachesEveryReplica(t *testing.T) {
	gs := gates(t, 2, throttle.Options{})
	if err := gs[0].Pause(context.Background(), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for {
		err := gs[1].Acquire(context.Background(), throttle.Invitation)
		var fe *failure.Error
		if errors.As(err, &fe) {
			if v := failure.Classify(err); v.After < time.Second || v.Reason != failure.Throttled {
				t.Errorf("paused replica told to wait %v (%s)", v.After, v.Reason)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the other replica never saw the pause")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestKindOf(t *testing.T) {
	tests := []struct {
		method, path string
		want         throttle.Kind
	}{
		{"POST", "/v1.0/invitations", throttle.Invitation},
		{"PATCH", "/v1.0/users/6f1c", throttle.Write},
		{"POST", "/v1.0/users/6f1c/assignLicense", throttle.Write},
		{"POST", "/v1.0/groups/5a1e/members/$ref", throttle.Write},
		{"POST", "/v1.0/users/onboarding@contoso.com/sendMail", throttle.SendMail},
		{"GET", "/v1.0/users", throttle.Read},
		{"GET", "/v1.0/users/6f1c", throttle.Read},
		{"GET", "/v1.0/users/6f1c/licenseDetails", throttle.Read},
		{"GET", "/v1.0/subscribedSkus", throttle.Read},
		{"PATCH", "/v1.0/users/", throttle.Read},
		{"POST", "/v1.0/users//assignLicense", throttle.Read},
		{"POST", "/v1.0/users/6f1c/assignLicense/", throttle.Read},
		{"POST", "/graph/v1.0/users/6f1c/sendMail", throttle.SendMail},
		{"GET", "/instances/sales/api/data/v9.2/roles", throttle.Free},
		{"POST", "/oauth2/v2.0/token", throttle.Free},
	}
	for _, tt := range tests {
		if got := throttle.KindOf(tt.method, tt.path); got != tt.want {
			t.Errorf("KindOf(%s %s) = %v, want %v", tt.method, tt.path, got, tt.want)
		}
	}
}

func TestDataverse429PausesThatInstanceForEveryReplica(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/instances/sales/api/data/v9.2/roles" && r.Header.Get("X-First") == "1" {
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	gs := gates(t, 2, throttle.Options{})
	call := func(g *throttle.Gate, path string, first bool) error {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if first {
			req.Header.Set("X-First", "1")
		}
		resp, err := (&http.Client{Transport: g.DataverseTransport(nil)}).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := call(gs[0], "/instances/sales/api/data/v9.2/roles", true); err != nil {
		t.Fatal(err)
	}
	// The other replica stops calling sales without a 429 of its own…
	deadline := time.Now().Add(time.Second)
	for {
		before := hits.Load()
		err := call(gs[1], "/instances/sales/api/data/v9.2/systemusers", false)
		if err != nil {
			if v := failure.Classify(err); v.Reason != failure.Throttled || v.After < 2*time.Second || hits.Load() != before {
				t.Errorf("paused call: %v (verdict %+v, reached the server: %v)", err, v, hits.Load() != before)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other replica never saw the pause")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// …while another instance and the admin API are not paused.
	if err := call(gs[1], "/instances/service/api/data/v9.2/systemusers", false); err != nil {
		t.Errorf("another instance paused: %v", err)
	}
	if err := call(gs[1], "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/x/addUser", false); err != nil {
		t.Errorf("the admin API paused: %v", err)
	}
}
