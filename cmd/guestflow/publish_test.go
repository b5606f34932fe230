package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guestflow/guestflow/internal/worker"
)

// runCLI executes guestflow with args in-process and returns everything it
// wrote and its error, as a person at the terminal would see them.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := newRoot()
	root.SetArgs(args)
	root.SetIn(strings.NewReader(""))
	root.SetOut(&out)
	root.SetErr(&out)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	if err != nil {
		out.WriteString("guestflow: " + err.Error() + "\n")
	}
	return out.String(), err
}

// TestCommandsRedactNATSCredentials: a NATS URL with a password or a token
// must not reach stderr, not even through nats.go's own parse error.
func TestCommandsRedactNATSCredentials(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir) // no guestflow.yaml here
	csv := filepath.Join(dir, "guests.csv")
	if err := os.WriteFile(csv, []byte("version:v1.0\n"+importHeader+"\nana@fabrikam.com,,,,Ana,Silva,PT,sales,,\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	commands := map[string][]string{
		"publish": {"publish", "--email", "ana@fabrikam.com", "--given-name", "Ana", "--surname", "Silva", "--usage-location", "PT", "--instance", "sales"},
		"import":  {"import", csv},
		"dlq":     {"dlq", "list"},
		"status":  {"status", "ana@fabrikam.com"},
	}
	urls := []struct{ url, secret, shown string }{
		{"nats://ops:hunter2@127.0.0.1:1", "hunter2", "nats://ops:xxxxx@127.0.0.1:1"},
		{"nats://s3cr3t-t0ken@127.0.0.1:1", "s3cr3t-t0ken", "nats://xxxxx@127.0.0.1:1"},
		{"nats://ops:hunter2@127.0.0.1:bad", "hunter2", "nats://xxxxx@127.0.0.1:bad"},
		{"nats://ops:hun%zzter2@127.0.0.1:1", "%zz", "nats://xxxxx@127.0.0.1:1"},
		{"nats://a:hunter2@127.0.0.1:1, nats://b:hunter3@127.0.0.1:2", "hunter", "nats://a:xxxxx@127.0.0.1:1, nats://b:xxxxx@127.0.0.1:2"},
	}
	for name, args := range commands {
		for _, u := range urls {
			out, err := runCLI(t, append(args, "--nats", u.url)...)
			if err == nil {
				t.Errorf("%s --nats %s succeeded", name, u.url)
			}
			if strings.Contains(out, u.secret) || !strings.Contains(out, u.shown) {
				t.Errorf("%s --nats %s: want %s and no %q in:\n%s", name, u.url, u.shown, u.secret, out)
			}
		}
	}
}

func TestPublishReportsADuplicate(t *testing.T) {
	e := newOperatorEnv(t, true)
	args := []string{"publish", "--id", "hr-1001", "--email", "ana@fabrikam.com", "--given-name", "Ana", "--surname", "Silva",
		"--usage-location", "PT", "--instance", "sales"}
	stdout, _, err := e.run(nil, args...)
	if err != nil || strings.TrimSpace(stdout) != "hr-1001" {
		t.Fatalf("first publish: %q, %v", stdout, err)
	}
	stdout, _, err = e.run(nil, args...)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 4 || !strings.Contains(err.Error(), "event hr-1001 was not published") ||
		!strings.Contains(err.Error(), "duplicate window (2m0s)") || stdout != "" {
		t.Errorf("second publish: stdout %q, error %v; want exit 4 naming the id", stdout, err)
	}
	s, err := e.js.Stream(t.Context(), worker.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(t.Context()); err != nil || info.State.Msgs != 1 {
		t.Errorf("stream holds %v messages (%v), want 1", info.State.Msgs, err)
	}
}
