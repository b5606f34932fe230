package config_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/guestflow/guestflow/internal/config"
)

// natsFiles writes the files a NATS section may name into a folder and
// returns it.
func natsFiles(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"ca.pem", "nats.pem", "nats-key.pem", "seed.nk", "password", "token", "guestflow.creds"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// loadNATS loads a configuration file holding body in dir.
func loadNATS(t *testing.T, dir, body string, env ...string) (config.NATS, error) {
	t.Helper()
	p := filepath.Join(dir, "guestflow.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.LoadUnvalidated(p, true, env)
	if err != nil {
		return config.NATS{}, err
	}
	return c.NATS, c.NATS.Validate()
}

func TestNATSSectionLoadsAndResolvesFiles(t *testing.T) {
	dir := natsFiles(t)
	n, err := loadNATS(t, dir, `
nats:
  urls: [tls://nats-1.internal:4222, nats-2.internal:4222]
  nkeyFile: seed.nk
  inboxPrefix: _INBOX_guestflow_invite
  tls:
    caFile: ca.pem
    certFile: nats.pem
    keyFile: nats-key.pem
    serverName: nats.internal
`)
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Servers(); !slices.Equal(got, []string{"tls://nats-1.internal:4222", "nats-2.internal:4222"}) {
		t.Errorf("servers %q", got)
	}
	if n.NKeyFile != filepath.Join(dir, "seed.nk") || n.TLS.CAFile != filepath.Join(dir, "ca.pem") || n.TLS.KeyFile != filepath.Join(dir, "nats-key.pem") {
		t.Errorf("relative files are not resolved against the configuration's folder: %+v", n)
	}
	if !n.TLS.Enabled() || n.TLS.ServerName != "nats.internal" {
		t.Errorf("tls %+v", n.TLS)
	}
}

func TestNATSCommaSeparatedURLAndEnvironment(t *testing.T) {
	dir := natsFiles(t)
	n, err := loadNATS(t, dir, "nats:\n  url: nats://a:4222, nats://b:4222\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Servers(); !slices.Equal(got, []string{"nats://a:4222", "nats://b:4222"}) {
		t.Errorf("servers %q", got)
	}
	// A variable replaces the whole list, whichever key the file used.
	n, err = loadNATS(t, dir, "nats:\n  urls: [nats://a:4222]\n",
		"GUESTFLOW_NATS_URL=nats://c:4222",
		"GUESTFLOW_NATS_USER=guestflow-invite",
		"GUESTFLOW_NATS_PASSWORD=s3cret",
		"GUESTFLOW_NATS_TLS_CAFILE="+filepath.Join(dir, "ca.pem"),
		"GUESTFLOW_NATS_TLS_SERVERNAME=nats.internal")
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Servers(); !slices.Equal(got, []string{"nats://c:4222"}) {
		t.Errorf("GUESTFLOW_NATS_URL did not replace nats.urls: %q", got)
	}
	if n.User != "guestflow-invite" || n.Password != "s3cret" || n.TLS.ServerName != "nats.internal" || n.TLS.CAFile == "" {
		t.Errorf("environment not applied: %+v", n)
	}
	n, err = loadNATS(t, dir, "nats:\n  url: nats://a:4222\n", "GUESTFLOW_NATS_URLS=nats://d:4222,nats://e:4222")
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Servers(); !slices.Equal(got, []string{"nats://d:4222", "nats://e:4222"}) {
		t.Errorf("GUESTFLOW_NATS_URLS: %q", got)
	}
}

func TestNATSSecretsNeverComeFromTheFile(t *testing.T) {
	dir := natsFiles(t)
	for _, tc := range []struct{ body, want, leak string }{
		{"nats:\n  user: guestflow\n  password: hunter2\n", "line 3: nats.password: secrets never go in the configuration file", "hunter2"},
		{"nats:\n  token: t0ken\n", "nats.token: secrets never go", "t0ken"},
		{"nats:\n  url: nats://guestflow:hunter2@nats.internal:4222\n", "credentials in it", "hunter2"},
		{"nats:\n  urls: [nats://a:4222, \"nats://t0ken@b:4222\"]\n", "line 2: nats.urls", "t0ken"},
	} {
		_, err := loadNATS(t, dir, tc.body)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: want an error with %q, got %v", tc.body, tc.want, err)
			continue
		}
		if strings.Contains(err.Error(), tc.leak) {
			t.Errorf("the error shows the secret: %v", err)
		}
	}
	// From the environment, a password is fine, and never written back.
	c := config.Config{NATS: config.NATS{URL: "nats://a:4222", User: "guestflow", Password: "hunter2", Token: "t0ken"}}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "hunter2") || strings.Contains(string(out), "t0ken") {
		t.Errorf("a secret from the environment is written into the configuration:\n%s", out)
	}
}

func TestNATSValidation(t *testing.T) {
	dir := natsFiles(t)
	f := func(name string) string { return filepath.Join(dir, name) }
	for _, tc := range []struct {
		name string
		n    config.NATS
		want []string // in the error; none means valid
	}{
		{"defaults", config.NATS{URL: config.DefaultNATSURL}, nil},
		{"user and password file", config.NATS{URL: "nats://a:4222", User: "u", PasswordFile: f("password")}, nil},
		{"token from the environment", config.NATS{URL: "nats://a:4222", Token: "t"}, nil},
		{"two ways to sign in", config.NATS{URL: "nats://a:4222", Creds: f("guestflow.creds"), NKeyFile: f("seed.nk")},
			[]string{"nats.creds, nats.nkeyFile are all set; choose one way"}},
		{"URL credentials and a user", config.NATS{URL: "nats://u:p@a:4222", User: "u", Password: "p"},
			[]string{"nats.user, credentials in the server URL are all set"}},
		{"user without password", config.NATS{URL: "nats://a:4222", User: "u"}, []string{`nats.user "u" has no password`}},
		{"password without user", config.NATS{URL: "nats://a:4222", Password: "p"}, []string{"nats.user is missing"}},
		{"password twice", config.NATS{URL: "nats://a:4222", User: "u", Password: "p", PasswordFile: f("password")},
			[]string{"nats.passwordFile and GUESTFLOW_NATS_PASSWORD are both set"}},
		{"token twice", config.NATS{URL: "nats://a:4222", Token: "t", TokenFile: f("token")},
			[]string{"nats.tokenFile and GUESTFLOW_NATS_TOKEN are both set"}},
		{"certificate without key", config.NATS{URL: "nats://a:4222", TLS: config.NATSTLS{CertFile: f("nats.pem")}},
			[]string{"nats.tls.certFile and nats.tls.keyFile go together"}},
		{"key without certificate", config.NATS{URL: "nats://a:4222", TLS: config.NATSTLS{KeyFile: f("nats-key.pem")}},
			[]string{"nats.tls.certFile and nats.tls.keyFile go together"}},
		{"missing files", config.NATS{URL: "nats://a:4222", NKeyFile: f("gone.nk"), TLS: config.NATSTLS{CAFile: f("gone.pem")}},
			[]string{"nats.nkeyFile: open " + f("gone.nk"), "nats.tls.caFile: open " + f("gone.pem")}},
		{"a folder for a file", config.NATS{URL: "nats://a:4222", Creds: dir}, []string{"nats.creds: " + dir + " is a folder"}},
		{"url and urls", config.NATS{URL: "nats://a:4222", URLs: []string{"nats://b:4222"}}, []string{"nats.url and nats.urls are both set"}},
		{"not a NATS URL", config.NATS{URL: "https://a:4222"}, []string{`"https://a:4222" is not a NATS server URL`}},
		{"bad inbox prefix", config.NATS{URL: "nats://a:4222", InboxPrefix: "_INBOX.>"}, []string{"nats.inboxPrefix"}},
	} {
		err := tc.n.Validate()
		if len(tc.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: want %q in the error, got %v", tc.name, w, err)
			}
		}
	}
}

func TestNATSURLErrorsAreRedacted(t *testing.T) {
	for _, u := range []string{"https://guestflow:hunter2@a:4222", "nats://guestflow:hunter2@a:bad", "nats://hunter2@a:4222,ftp://b"} {
		err := config.NATS{URL: u}.Validate()
		if err == nil {
			t.Errorf("%q is accepted", u)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
	// The whole configuration reports the section's problems with the rest.
	err := config.Config{NATS: config.NATS{URL: "nats://a:4222", User: "u"}}.Validate()
	if err == nil || !strings.Contains(err.Error(), "nats.user") || !strings.Contains(err.Error(), "tenant.id") {
		t.Errorf("Validate: %v", err)
	}
}

func TestNATSReplicasAndDLQLimit(t *testing.T) {
	dir := natsFiles(t)
	n, err := loadNATS(t, dir, "nats:\n  url: nats://a:4222\n")
	if err != nil {
		t.Fatal(err)
	}
	if n.StreamReplicas() != 1 || n.DLQMaxBytes != 0 {
		t.Errorf("defaults: %d replicas, DLQ limit %d; want 1 and 0 (the workers' default)", n.StreamReplicas(), n.DLQMaxBytes)
	}
	n, err = loadNATS(t, dir, "nats:\n  url: nats://a:4222\n  replicas: 3\n  dlqMaxBytes: 256MiB\n")
	if err != nil {
		t.Fatal(err)
	}
	if n.StreamReplicas() != 3 || n.DLQMaxBytes != 256<<20 {
		t.Errorf("from the file: %d replicas, DLQ limit %d", n.StreamReplicas(), n.DLQMaxBytes)
	}
	n, err = loadNATS(t, dir, "nats:\n  url: nats://a:4222\n  replicas: 3\n",
		"GUESTFLOW_NATS_REPLICAS=5", "GUESTFLOW_NATS_DLQMAXBYTES=-1")
	if err != nil {
		t.Fatal(err)
	}
	if n.StreamReplicas() != 5 || n.DLQMaxBytes != -1 {
		t.Errorf("from the environment: %d replicas, DLQ limit %d", n.StreamReplicas(), n.DLQMaxBytes)
	}
	for _, tc := range []struct{ body, want string }{
		{"nats:\n  replicas: 2\n", "nats.replicas 2: use 1 or 3"},
		{"nats:\n  replicas: 4\n", "nats.replicas 4: use 3 or 5"},
		{"nats:\n  replicas: 7\n", "nats.replicas 7: JetStream keeps a stream on 1 to 5 servers"},
		{"nats:\n  replicas: -1\n", "nats.replicas -1"},
		{"nats:\n  dlqMaxBytes: 1GB\n", `"1GB" is not a size`},
		{"nats:\n  dlqMaxBytes: 64KiB\n", "nats.dlqMaxBytes 64KiB: at least 1MiB"},
		{"nats:\n  dlqMaxBytes: [1]\n", "a size is a number of bytes"},
	} {
		if _, err := loadNATS(t, dir, tc.body); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: want an error with %q, got %v", tc.body, tc.want, err)
		}
	}
	if _, err := loadNATS(t, dir, "nats:\n  url: nats://a:4222\n", "GUESTFLOW_NATS_REPLICAS=three"); err == nil || !strings.Contains(err.Error(), "GUESTFLOW_NATS_REPLICAS") {
		t.Errorf("a replica count that is no number: %v", err)
	}
	// Written back as it was read.
	out, err := config.Config{NATS: config.NATS{URL: "nats://a:4222", Replicas: 3, DLQMaxBytes: 2 << 30}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "replicas: 3") || !strings.Contains(string(out), "dlqMaxBytes: 2GiB") {
		t.Errorf("marshalled:\n%s", out)
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]config.ByteSize{
		"0": 0, "-1": -1, "1048576": 1 << 20, "1MiB": 1 << 20, "1 GiB": 1 << 30, "3KiB": 3 << 10, "2TiB": 2 << 40, "17B": 17,
	} {
		if got, err := config.ParseByteSize(in); err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1G", "1GB", "1.5GiB", "-2", "-1GiB", "lots", "99999999999TiB"} {
		if got, err := config.ParseByteSize(in); err == nil {
			t.Errorf("%q: accepted as %d", in, got)
		}
	}
}

// The configurations deploy/ ships load strictly and validate, but for the
// files they name, which exist only in the pods; production keeps every
// stream on the three servers of deploy/nats-values.yaml.
func TestDeployConfigurations(t *testing.T) {
	files, err := filepath.Glob("../../deploy/kubernetes/*/guestflow.yaml")
	if err != nil {
		t.Fatal(err)
	}
	overlays, err := filepath.Glob("../../deploy/kubernetes/overlays/*/guestflow.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, overlays...)
	if len(files) < 3 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		c, err := config.LoadUnvalidated(f, true, nil)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		var problems []string
		if err := c.Validate(); err != nil {
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				for _, line := range strings.Split(e.Error(), "\n") {
					if !strings.Contains(line, "no such file or directory") {
						problems = append(problems, line)
					}
				}
			}
		}
		if len(problems) > 0 {
			t.Errorf("%s: %s", f, strings.Join(problems, "; "))
		}
		if strings.Contains(f, "production") && c.NATS.StreamReplicas() != 3 {
			t.Errorf("%s: nats.replicas %d, want 3: the NATS cluster has three servers", f, c.NATS.StreamReplicas())
		}
	}
}
