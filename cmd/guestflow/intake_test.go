package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/guestflow/guestflow/internal/broker/brokertest"
	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/intake"
	"github.com/guestflow/guestflow/internal/worker"
)

// TestIntakeRefusesToStartWithoutACredential fails before it connects to
// NATS, naming the flags to give.
func TestIntakeRefusesToStartWithoutACredential(t *testing.T) {
	root := newRoot()
	root.SetArgs([]string{"intake", "--config", writeConfig(t, ""), "--nats", "nats://127.0.0.1:1"})
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "--tokens-file, --hmac-secret-file or --client-ca") {
		t.Fatalf("error %v", err)
	}
}

// TestIntakeFlagsOverTheConfiguration: a flag given wins, then the
// intake: key, then the flag's default.
func TestIntakeFlagsOverTheConfiguration(t *testing.T) {
	f := &intakeFlags{}
	fl := pflag.NewFlagSet("intake", pflag.ContinueOnError)
	f.register(fl)
	if err := fl.Parse([]string{"--rate", "7", "--tokens-file", "/flag/tokens"}); err != nil {
		t.Fatal(err)
	}
	o := f.options(fl, config.Intake{Rate: 50, Burst: 9, TokensFile: "/config/tokens", HMACSecretFile: "/config/hmac", PublishTimeout: time.Second})
	if o.Rate != 7 || o.TokensFile != "/flag/tokens" {
		t.Errorf("a flag given lost to the configuration: %+v", o)
	}
	if o.Burst != 9 || o.HMACSecretFile != "/config/hmac" || o.PublishTimeout != time.Second {
		t.Errorf("the configuration lost to a default: %+v", o)
	}
	if o.Listen != intake.DefaultListen {
		t.Errorf("listen %q", o.Listen)
	}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "guestflow.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestIntakeServesTheOpsEndpoints: with --ops-addr the intake answers
// /livez, /readyz (NATS connected and events storable: ready once the
// stream exists) and /metrics with its own counters, like the workers.
func TestIntakeServesTheOpsEndpoints(t *testing.T) {
	ns := brokertest.URL(t)
	js := brokertest.JetStream(t, ns)
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("a-test-token-of-enough-length\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	root := newRoot()
	root.SetOut(out)
	addr := "127.0.0.1:" + freePort(t)
	root.SetArgs([]string{"intake", "--config", writeConfig(t, ""), "--nats", ns, "--listen", "127.0.0.1:0",
		"--tokens-file", tokens, "--ops-addr", addr})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	ready := func() (int, string) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code, _ := ready(); code != 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("intake ended: %v\n%s", err, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ops server within 10s:\n%s", out)
		}
	}
	if code, body := ready(); code != http.StatusServiceUnavailable || !strings.Contains(body, "intake") {
		t.Errorf("/readyz before any stream exists: %d %q, want 503 naming the intake check", code, body)
	}
	if err := worker.EnsureStreams(ctx, js, worker.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	if code, body := ready(); code != http.StatusOK {
		t.Errorf("/readyz with the stream: %d %q", code, body)
	}
	// One request without a credential, counted.
	m := regexp.MustCompile(`intake\s+(http://\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("intake does not say where it listens:\n%s", out)
	}
	if code, _ := httpGet(t, m[1]+"/v1/events"); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/events without a token: %d, want 401", code)
	}
	if code, body := httpGet(t, "http://"+addr+"/metrics"); code != http.StatusOK || !strings.Contains(body, `guestflow_intake_requests_total{route="/v1/events",status="401"}`) {
		t.Errorf("/metrics: %d, the 401 is not counted:\n%s", code, grepLines(body, "guestflow_intake_"))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// grepLines is the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
