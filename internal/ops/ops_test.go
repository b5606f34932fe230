package ops_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/guestflow/guestflow/internal/ops"
)

func start(t *testing.T, ctx context.Context, o ops.Options) *ops.Server {
	t.Helper()
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	s, err := ops.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown() })
	return s
}

// get returns the status and body of GET url.
func get(t *testing.T, url string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestLivezReadyzAndMetrics(t *testing.T) {
	s := start(t, context.Background(), ops.Options{})
	base := "http://" + s.Addr()
	if code, body := get(t, base+"/livez"); code != 200 || body != "ok\n" {
		t.Errorf("/livez: %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 200 || !strings.HasPrefix(body, "ready\n") {
		t.Errorf("/readyz without checks: %d %q", code, body)
	}
	code, body := get(t, base+"/metrics")
	if code != 200 || !strings.Contains(body, "\ngo_goroutines ") {
		t.Errorf("/metrics: %d, no go_goroutines in\n%.500s", code, body)
	}
}

func TestPprofOnlyWhenAsked(t *testing.T) {
	off := start(t, context.Background(), ops.Options{})
	on := start(t, context.Background(), ops.Options{Pprof: true})
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
		if code, _ := get(t, "http://"+off.Addr()+path); code != http.StatusNotFound {
			t.Errorf("without --pprof, %s answers %d", path, code)
		}
		if code, _ := get(t, "http://"+on.Addr()+path); code != http.StatusOK {
			t.Errorf("with --pprof, %s answers %d", path, code)
		}
	}
	if _, body := get(t, "http://"+on.Addr()+"/debug/pprof/goroutine?debug=1"); !strings.Contains(body, "goroutine profile") {
		t.Errorf("goroutine profile: %.200s", body)
	}
}

func TestAddressInUseIsSaidPlainly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = ops.Start(context.Background(), ops.Options{Addr: ln.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()+" is already in use") || !strings.Contains(err.Error(), "--ops-addr") {
		t.Fatalf("err %v", err)
	}
}

// TestReadyzNamesTheFailedChecks: 503 and the names of the checks that
// failed, in plain text and JSON; a check that hangs fails by its timeout.
func TestReadyzNamesTheFailedChecks(t *testing.T) {
	s := start(t, context.Background(), ops.Options{CheckTimeout: 100 * time.Millisecond, Checks: []ops.Check{
		{Name: "nats", Run: func(context.Context) error { return nil }},
		{Name: "token", Run: func(context.Context) error { return errors.New("no token yet: invalid_client") }},
		{Name: "slow", Run: func(context.Context) error { time.Sleep(time.Second); return nil }},
	}})
	began := time.Now()
	code, body := get(t, "http://"+s.Addr()+"/readyz")
	if took := time.Since(began); took > 600*time.Millisecond {
		t.Errorf("/readyz took %s: a hung check must not hold the probe", took)
	}
	if code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", code)
	}
	for _, want := range []string{"not ready: token, slow\n", "ok    nats\n", "fail  token: no token yet: invalid_client\n", "fail  slow: no answer within 100ms\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	code, body = get(t, "http://"+s.Addr()+"/readyz", "Accept", "application/json")
	var got struct {
		Ready  bool
		Failed []string
		Checks []struct {
			Name, Error string
			OK          bool
		}
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || code != 503 {
		t.Fatalf("JSON: %d %v\n%s", code, err, body)
	}
	if got.Ready || strings.Join(got.Failed, ",") != "token,slow" || len(got.Checks) != 4 || got.Checks[2].Error != "no token yet: invalid_client" {
		t.Errorf("JSON %+v", got)
	}
}

// TestReadyzFailsOnceTheCommandStops: a draining worker is not ready, but
// alive, until the server is shut down.
func TestReadyzFailsOnceTheCommandStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := start(t, ctx, ops.Options{})
	base := "http://" + s.Addr()
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz %d before the stop", code)
	}
	cancel()
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "fail  running: shutting down") {
		t.Errorf("/readyz while stopping: %d %q", code, body)
	}
	if code, _ := get(t, base+"/livez"); code != 200 {
		t.Errorf("/livez while stopping: %d", code)
	}
	if err := s.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(base + "/livez"); err == nil {
		t.Error("still serving after Shutdown")
	}
}
