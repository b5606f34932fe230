package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestDeployManifests runs the tests of deploy/, a Go module of its own so
// that Kubernetes, kustomize and KEDA stay out of guestflow's build: they
// render every overlay and decode it strictly, check the policy and the
// NATS users. `go test ./...` at the root does not enter a nested module,
// so this test does, and the README's one test command covers deploy/ too.
func TestDeployManifests(t *testing.T) {
	if testing.Short() {
		t.Skip("builds deploy/'s own module; skipped with -short")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to test deploy/: %v", err)
	}
	dir, err := filepath.Abs(filepath.Join("..", "deploy"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("deploy/ is no module: %v", err)
	}
	for _, args := range [][]string{{"vet", "./..."}, {"test", "-count=1", "./..."}} {
		cmd := exec.Command(gobin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %v in deploy/: %v\n%s", args, err, out)
		}
		t.Logf("go %v in deploy/:\n%s", args, out)
	}
}
