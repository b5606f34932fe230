package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is an io.Writer safe for the watcher and the command at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// TestDevOnboardsTheDemoUserAndKeepsServing runs `guestflow dev` as a
// newcomer would, on free ports, and stops it as Ctrl-C would.
func TestDevOnboardsTheDemoUserAndKeepsServing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	root := newRoot()
	root.SetOut(out)
	opsAddr := "127.0.0.1:" + freePort(t)
	root.SetArgs([]string{"dev", "--nats-addr", "127.0.0.1:" + freePort(t), "--monitor-port", "0",
		"--graphsim-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--sync-delay", "200ms", "--ops-addr", opsAddr})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	deadline := time.After(60 * time.Second)
	for !strings.Contains(out.String(), "The demo user is onboarded") {
		select {
		case err := <-done:
			t.Fatalf("dev ended early: %v\n%s", err, out)
		case <-deadline:
			t.Fatalf("demo user not onboarded within 60s:\n%s", out)
		case <-time.After(50 * time.Millisecond):
		}
	}
	for _, step := range []string{"guestflow.user.joined", "guestflow.user.invited", "guestflow.user.licensed",
		"guestflow.user.role_assigned", "guestflow.user.onboarded", "roles [Salesperson]", "notified ana.silva@fabrikam.com"} {
		if !strings.Contains(out.String(), step) {
			t.Errorf("progress lacks %q:\n%s", step, out)
		}
	}
	// Every worker's readiness: NATS, the four consumers, a token.
	var code int
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if code, body = httpGet(t, "http://"+opsAddr+"/readyz"); code == http.StatusOK {
			break
		}
	}
	for _, want := range []string{"ready\n", "ok    nats\n", "ok    consumer invite\n", "ok    consumer notify\n", "ok    token\n"} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("/readyz %d, lacks %q:\n%s", code, want, body)
		}
	}
	if code, body := httpGet(t, "http://"+opsAddr+"/metrics"); code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics %d:\n%.300s", code, body)
	}
	select {
	case err := <-done:
		t.Fatalf("dev stopped serving after the demo: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Ctrl-C must end dev cleanly, got %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not shut down within 30s of Ctrl-C")
	}
}
