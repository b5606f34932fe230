package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
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
	dataDir := t.TempDir()
	root.SetArgs([]string{"dev", "--nats-addr", "127.0.0.1:" + freePort(t), "--monitor-port", "0",
		"--graphsim-addr", "127.0.0.1:0", "--data-dir", dataDir, "--sync-delay", "200ms", "--ops-addr", opsAddr, "--intake-addr", "127.0.0.1:0"})
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
	devIntakeOnboards(t, out, dataDir, deadline)
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

// devIntakeOnboards runs the curl line dev printed, by hand: the token
// from the first line of intake.token that is not a comment, the event
// posted to the printed address, and the user onboarded.
func devIntakeOnboards(t *testing.T, out *syncBuffer, dataDir string, deadline <-chan time.Time) {
	t.Helper()
	m := regexp.MustCompile(`intake      (http://\S+), bearer token ([0-9a-f]{64}) \(also in (\S+)\)`).FindStringSubmatch(out.String())
	if m == nil || m[3] != filepath.Join(dataDir, "intake.token") {
		t.Fatalf("dev does not say where its intake and token are:\n%s", out)
	}
	if !strings.Contains(out.String(), "curl -sS "+m[1]+"/v1/events") {
		t.Errorf("no curl line:\n%s", out)
	}
	printed := m[2]
	raw, err := os.ReadFile(m[3])
	if err != nil {
		t.Fatal(err)
	}
	var token string
	for _, line := range strings.Split(string(raw), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			token = line
			break
		}
	}
	if len(token) != 64 || token != printed {
		t.Fatalf("token %q in the file, %q printed: want the same 64 hex digits", token, printed)
	}
	body := `{"specversion":"1.0","id":"curl-1","source":"hr/curl","type":"io.guestflow.user.joined.v1",` +
		`"data":{"email":"someone@fabrikam.com","givenName":"Some","surname":"One","usageLocation":"PT","instance":"service"}}`
	req, _ := http.NewRequest(http.MethodPost, m[1]+"/v1/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/cloudevents+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %s", resp.Status)
	}
	for !strings.Contains(out.String(), "someone@fabrikam.com joined") || !strings.Contains(out.String(), "notified someone@fabrikam.com") {
		select {
		case <-deadline:
			t.Fatalf("the user posted to the intake was not onboarded:\n%s", out)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
