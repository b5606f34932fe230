package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestGraphsimServesTheOpsEndpoints: --ops-addr and --pprof reach the ops
// server, which is ready once the emulator listens.
func TestGraphsimServesTheOpsEndpoints(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	root := newRoot()
	root.SetOut(out)
	addr := "127.0.0.1:" + freePort(t)
	root.SetArgs([]string{"graphsim", "--addr", "127.0.0.1:0", "--ops-addr", addr, "--pprof"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "ops server on http://"+addr); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no ops server within 10s:\n%s", out)
		}
	}
	for path, want := range map[string]string{"/livez": "ok", "/readyz": "ok    running", "/metrics": "go_goroutines", "/debug/pprof/": "goroutine"} {
		if code, body := httpGet(t, "http://"+addr+path); code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("%s: %d, lacks %q:\n%.300s", path, code, want, body)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + addr + "/livez"); err == nil {
		t.Error("the ops server outlived the command")
	}
}
