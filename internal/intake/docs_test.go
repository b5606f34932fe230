package intake_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guestflow/guestflow/internal/intake"
)

// TestHMACShellExampleInTheDocs runs the signing example of
// docs/intake.md, as written, against an intake: the scheme the page
// describes is the one the intake checks.
func TestHMACShellExampleInTheDocs(t *testing.T) {
	for _, tool := range []string{"sh", "openssl", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	page, err := os.ReadFile("../../docs/intake.md")
	if err != nil {
		t.Fatal(err)
	}
	var script string
	for _, block := range strings.Split(string(page), "```sh\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		if strings.Contains(block, intake.HeaderSignature) {
			script = block
		}
	}
	if script == "" {
		t.Fatal("docs/intake.md has no sh block that signs a request")
	}
	r := newRig(t)
	first, rest, _ := strings.Cut(script, "\n")
	if !strings.HasPrefix(first, "INTAKE=") {
		t.Fatalf("the example should start by setting INTAKE, not %q", first)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "hmac-secrets"), "# the intake's secrets\n"+secretA+"\n")
	// A body with a newline in it, as a pretty-printed file has.
	writeFile(t, filepath.Join(dir, "event.json"), strings.Replace(string(joined("docs-1", "ana@fabrikam.com")), `"data":`, "\n  \"data\":", 1)+"\n")
	cmd := exec.Command("sh", "-c", "INTAKE="+r.url+"\n"+rest)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var a intake.Accepted
	if err := json.Unmarshal(out, &a); err != nil || a.OnboardingID != "docs-1" {
		t.Fatalf("the example got %s", out)
	}
	if ids := r.storedIDs(); !equal(ids, []string{"docs-1"}) {
		t.Errorf("stored %q", ids)
	}
}
