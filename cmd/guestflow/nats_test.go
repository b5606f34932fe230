package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/guestflow/guestflow/internal/app"
	"github.com/guestflow/guestflow/internal/broker/brokertest"
	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/worker"
)

// Every command that connects to NATS has the same --nats flag, and no
// other connection flag: credentials and TLS come from the configuration.
func TestEveryCommandThatConnectsHasTheSameNATSFlag(t *testing.T) {
	root := newRoot()
	var want string
	for _, path := range [][]string{{"worker"}, {"publish"}, {"import"}, {"status"}, {"dlq", "list"}, {"dlq", "replay"}, {"provision"}} {
		cmd, _, err := root.Find(path)
		if err != nil {
			t.Fatal(err)
		}
		f := cmd.Flag("nats")
		if f == nil {
			t.Errorf("%s has no --nats", strings.Join(path, " "))
			continue
		}
		if want == "" {
			want = f.Usage
		}
		if f.Usage != want {
			t.Errorf("%s --nats says %q, the others %q", strings.Join(path, " "), f.Usage, want)
		}
		for _, name := range []string{"nats-creds", "creds", "nats-user", "nats-password"} {
			if cmd.Flag(name) != nil {
				t.Errorf("%s has --%s: secrets stay off command lines", strings.Join(path, " "), name)
			}
		}
	}
}

// authEnv is a broker that requires a user and password, whose streams
// exist, and a configuration file that signs in with a password file.
type authEnv struct {
	url, config string
}

func newAuthEnv(t *testing.T) authEnv {
	t.Helper()
	ns := brokertest.Start(t, func(o *server.Options) {
		o.Users = []*server.User{{Username: "hr", Password: "hunter2"}}
	})
	nc, js, err := app.Connect(config.NATS{URL: ns.ClientURL(), User: "hr", Password: "hunter2"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := worker.EnsureStreams(t.Context(), js, worker.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "password"), []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "guestflow.yaml")
	body := "nats:\n  url: nats://127.0.0.1:1\n  user: hr\n  passwordFile: password\ninstances:\n  sales:\n    url: https://sales.example\n"
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return authEnv{url: ns.ClientURL(), config: cfg}
}

// Every command signs in as the configuration says, --nats replacing only
// the server (publish used to connect without the configuration's
// credentials).
func TestCommandsSignInAsConfigured(t *testing.T) {
	e := newAuthEnv(t)
	csv := filepath.Join(t.TempDir(), "guests.csv")
	if err := os.WriteFile(csv, []byte("version:v1.0\n"+importHeader+"\nana@fabrikam.com,,,,Ana,Silva,PT,sales,,\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// In this order: status needs the event publish stored.
	for _, c := range []struct {
		name string
		args []string
	}{
		{"publish", []string{"publish", "--email", "ana@fabrikam.com", "--given-name", "Ana", "--surname", "Silva", "--usage-location", "PT", "--instance", "sales"}},
		{"import", []string{"import", csv, "--results", csv + ".out"}},
		{"status", []string{"status", "ana@fabrikam.com"}},
		{"dlq list", []string{"dlq", "list"}},
		{"provision", []string{"provision"}},
	} {
		name := c.name
		out, err := runCLI(t, append(c.args, "--config", e.config, "--nats", e.url)...)
		if err != nil {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
		if strings.Contains(out, "hunter2") {
			t.Errorf("%s shows the password:\n%s", name, out)
		}
	}
	// Without the password the broker refuses them.
	bare := filepath.Join(t.TempDir(), "bare.yaml")
	if err := os.WriteFile(bare, []byte("nats:\n  user: hr\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "dlq", "list", "--config", bare, "--nats", e.url); err == nil || !strings.Contains(out, `nats.user "hr" has no password`) {
		t.Errorf("a user without a password: %v\n%s", err, out)
	}
}

func TestProvisionCreatesOnceThenChangesNothing(t *testing.T) {
	ns := brokertest.Start(t, nil)
	t.Chdir(t.TempDir())
	first, err := runCLI(t, "provision", "--nats", ns.ClientURL())
	if err != nil {
		t.Fatal(err, first)
	}
	second, err := runCLI(t, "provision", "--nats", ns.ClientURL())
	if err != nil {
		t.Fatal(err, second)
	}
	for _, name := range []string{"GUESTFLOW ", "GUESTFLOW_DLQ", "GUESTFLOW_MEMO", "GUESTFLOW_LEASES", "GUESTFLOW_INDEX", "GUESTFLOW_THROTTLE"} {
		if !strings.Contains(line(first, name), "created") {
			t.Errorf("first run, %s: %q", name, line(first, name))
		}
		if !strings.Contains(line(second, name), "unchanged") {
			t.Errorf("second run, %s: %q", name, line(second, name))
		}
	}
}

// line is the line of out that holds s.
func line(out, s string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// A publisher needs only to publish joined events (and import, to look the
// stream up), as the README's table of NATS users says; without the
// lookup, import says which permission is missing.
func TestPublishersNeedOnlyTheirPermissions(t *testing.T) {
	inbox := []string{"_INBOX.>"}
	ns := brokertest.Start(t, func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "admin", Password: "admin"},
			{Username: "hr", Password: "hr", Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{"guestflow.user.joined"}},
				Subscribe: &server.SubjectPermission{Allow: inbox},
			}},
			{Username: "importer", Password: "importer", Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{"guestflow.user.joined", "$JS.API.STREAM.NAMES"}},
				Subscribe: &server.SubjectPermission{Allow: inbox},
			}},
		}
	})
	nc, js, err := app.Connect(config.NATS{URL: ns.ClientURL(), User: "admin", Password: "admin"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := worker.EnsureStreams(t.Context(), js, worker.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	csv := filepath.Join(dir, "guests.csv")
	if err := os.WriteFile(csv, []byte("version:v1.0\n"+importHeader+"\nana@fabrikam.com,,,,Ana,Silva,PT,sales,,\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	configFor := func(user string) string {
		p := filepath.Join(dir, user+".yaml")
		body := "nats:\n  url: " + ns.ClientURL() + "\n  user: " + user + "\ninstances:\n  sales:\n    url: https://sales.example\n"
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	publish := []string{"publish", "--email", "ana@fabrikam.com", "--given-name", "Ana", "--surname", "Silva", "--usage-location", "PT", "--instance", "sales"}
	t.Setenv("GUESTFLOW_NATS_PASSWORD", "hr")
	if out, err := runCLI(t, append(publish, "--config", configFor("hr"))...); err != nil {
		t.Errorf("publish as hr: %v\n%s", err, out)
	}
	// The refused lookup only times out: within three seconds here.
	var buf bytes.Buffer
	root := newRoot()
	root.SetArgs([]string{"import", csv, "--results", csv + ".hr", "--config", configFor("hr")})
	root.SetOut(&buf)
	root.SetErr(&buf)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	err = root.ExecuteContext(ctx)
	if err != nil {
		buf.WriteString(err.Error())
	}
	out := buf.String()
	if err == nil || !strings.Contains(out, `Permissions Violation for Publish to "$JS.API.STREAM.NAMES"`) {
		t.Errorf("import as hr, who may not look the stream up: %v\n%s", err, out)
	}
	t.Setenv("GUESTFLOW_NATS_PASSWORD", "importer")
	if out, err := runCLI(t, "import", csv, "--results", csv+".importer", "--config", configFor("importer")); err != nil {
		t.Errorf("import as importer: %v\n%s", err, out)
	}
}

// provision takes the stream settings from the configuration: the DLQ's
// byte limit, and replicas, which a single server cannot keep.
func TestProvisionTakesTheStreamSettingsFromTheConfiguration(t *testing.T) {
	ns := brokertest.Start(t, nil)
	dir := t.TempDir()
	t.Chdir(dir)
	cfg := filepath.Join(dir, "guestflow.yaml")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("nats:\n  dlqMaxBytes: 2MiB\n")
	if out, err := runCLI(t, "provision", "--config", cfg, "--nats", ns.ClientURL()); err != nil {
		t.Fatal(err, out)
	}
	js := brokertest.JetStream(t, ns.ClientURL())
	s, err := js.Stream(t.Context(), worker.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxBytes; got != 2<<20 {
		t.Errorf("%s MaxBytes %d, want nats.dlqMaxBytes 2MiB", worker.DLQStream, got)
	}
	write("nats:\n  replicas: 3\n")
	out, err := runCLI(t, "provision", "--config", cfg, "--nats", ns.ClientURL())
	if err == nil || !strings.Contains(out, "set nats.replicas to 1") {
		t.Errorf("3 replicas on one server: %v\n%s", err, out)
	}
}
