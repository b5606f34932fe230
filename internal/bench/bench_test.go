package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A worker that will not run must end the run at once with its reason,
// not after the run's timeout.
func TestRunEndsWhenAWorkerExits(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "refusing-worker")
	script := "#!/bin/sh\necho 'guestflow: --write-rate (-1) must be 0 (not paced) or more' >&2\nexit 1\n"
	if err := os.WriteFile(exe, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	_, err := Run(context.Background(), Options{N: 10, Replicas: 2, Exe: exe, Timeout: time.Minute}, Baseline)
	if err == nil {
		t.Fatal("a run without workers succeeded")
	}
	if !strings.Contains(err.Error(), "worker 0 exited") && !strings.Contains(err.Error(), "worker 1 exited") {
		t.Errorf("error %q does not say a worker exited", err)
	}
	if !strings.Contains(err.Error(), "--write-rate (-1)") {
		t.Errorf("error %q does not carry the worker's own message", err)
	}
	if d := time.Since(began); d > 20*time.Second {
		t.Errorf("took %s to notice", d)
	}
	if i := strings.Index(err.Error(), "worker logs kept in "); i < 0 {
		t.Errorf("error %q does not say where the logs are", err)
	} else {
		dir := strings.TrimSuffix(err.Error()[i+len("worker logs kept in "):], ")")
		if _, statErr := os.Stat(dir); statErr != nil {
			t.Errorf("the logs it names are gone: %v", statErr)
		}
		os.RemoveAll(dir)
	}
}
