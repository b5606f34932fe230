package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/guestflow/guestflow/internal/textsafe"
)

// NATS says where the broker is and how guestflow signs in to it. At most
// one way of authenticating is set: a .creds file, an nkey seed, a user and
// password, or a token. The secrets themselves never go in the file: the
// file names the files that hold them, or the environment carries them
// (GUESTFLOW_NATS_PASSWORD, GUESTFLOW_NATS_TOKEN), because a configuration
// is read, copied and committed by far more people than may sign in as the
// workers.
type NATS struct {
	// URL is a server URL, or several separated by commas, as nats.go
	// takes them. "nats://" with TLS settings connects with TLS.
	URL string `yaml:"url"`
	// URLs is the server list as a YAML list; set URL or URLs, not both.
	URLs []string `yaml:"urls,omitempty"`
	// Creds is a .creds file: a user JWT and its nkey seed, as nsc or the
	// nats CLI write it (decentralised, operator-mode authentication).
	Creds string `yaml:"creds"`
	// NKeyFile holds a user nkey seed ("SU…"); the server knows the
	// public key.
	NKeyFile string `yaml:"nkeyFile,omitempty"`
	// User signs in with a password from PasswordFile or, when that is
	// unset, GUESTFLOW_NATS_PASSWORD.
	User         string `yaml:"user,omitempty"`
	PasswordFile string `yaml:"passwordFile,omitempty"`
	// Password is GUESTFLOW_NATS_PASSWORD. It is never read from nor
	// written to a file.
	Password string `yaml:"-"`
	// TokenFile holds a token; GUESTFLOW_NATS_TOKEN is the alternative.
	TokenFile string `yaml:"tokenFile,omitempty"`
	// Token is GUESTFLOW_NATS_TOKEN, never read from nor written to a file.
	Token string  `yaml:"-"`
	TLS   NATSTLS `yaml:"tls,omitempty"`
	// InboxPrefix replaces "_INBOX" in the subjects replies come back on,
	// so that a server can give each user subscribe permission on its own
	// replies only, rather than on everyone's "_INBOX.>".
	InboxPrefix string `yaml:"inboxPrefix,omitempty"`
	// Replicas is how many servers of a JetStream cluster keep each of
	// guestflow's streams and key-value buckets: 1 (the default, for a
	// single server), 3 or 5. Even counts are refused: a stream's writes
	// need a majority of its replicas, so 2 survives the loss of no server
	// (as 1) while writing twice, and 4 survives one (as 3) while writing
	// four times. The workers and `guestflow provision` raise a stream or
	// bucket kept on fewer servers to this count, in place; they never
	// lower one kept on more.
	Replicas int `yaml:"replicas,omitempty"`
	// DLQMaxBytes bounds the dead-letter stream GUESTFLOW_DLQ; once it is
	// full the stream refuses new dead letters (discard new) rather than
	// dropping the oldest, which nobody has replayed yet. 0 means the
	// workers' default (worker.DefaultDLQMaxBytes, 1 GiB), -1 no limit.
	DLQMaxBytes ByteSize `yaml:"dlqMaxBytes,omitempty"`
}

// MaxReplicas is the most replicas JetStream keeps of a stream.
const MaxReplicas = 5

// MinDLQMaxBytes is the smallest limit accepted: the broker's default max
// payload, the size of one dead letter at most.
const MinDLQMaxBytes ByteSize = 1 << 20

// StreamReplicas is Replicas with its default filled in.
func (n NATS) StreamReplicas() int { return max(n.Replicas, 1) }

// NATSTLS is the TLS of the connection to the broker. Any setting makes the
// connection use TLS, whatever the URL's scheme.
type NATSTLS struct {
	// CAFile is a PEM bundle the server's certificate must chain to,
	// instead of the system's roots.
	CAFile string `yaml:"caFile,omitempty"`
	// CertFile and KeyFile are the client certificate, for servers that
	// verify clients (or map certificates to users); both or neither.
	CertFile string `yaml:"certFile,omitempty"`
	KeyFile  string `yaml:"keyFile,omitempty"`
	// ServerName is the name the server's certificate must carry, when it
	// is not the host of the URL (a server reached by IP address or
	// through a tunnel).
	ServerName string `yaml:"serverName,omitempty"`
}

// Enabled reports whether any TLS setting is made.
func (t NATSTLS) Enabled() bool { return t != NATSTLS{} }

// Servers is the server list: URLs, or URL split at its commas.
func (n NATS) Servers() []string {
	if len(n.URLs) > 0 {
		return append([]string(nil), n.URLs...)
	}
	return splitList(n.URL)
}

// SetServers replaces the server list with s, one URL or several separated
// by commas, as the --nats flags and GUESTFLOW_NATS_URL do.
func (n *NATS) SetServers(s string) { n.URL, n.URLs = s, nil }

// resolve makes the file paths of the NATS section absolute against dir,
// the configuration file's folder, as tenant.caFile is.
func (n *NATS) resolve(dir string) {
	for _, p := range n.files() {
		if *p.path != "" && !filepath.IsAbs(*p.path) {
			*p.path = filepath.Join(dir, *p.path)
		}
	}
}

// fileKey is a key of the NATS section that names a file.
type fileKey struct {
	key  string
	path *string
}

func (n *NATS) files() []fileKey {
	return []fileKey{
		{"nats.creds", &n.Creds}, {"nats.nkeyFile", &n.NKeyFile},
		{"nats.passwordFile", &n.PasswordFile}, {"nats.tokenFile", &n.TokenFile},
		{"nats.tls.caFile", &n.TLS.CAFile}, {"nats.tls.certFile", &n.TLS.CertFile}, {"nats.tls.keyFile", &n.TLS.KeyFile},
	}
}

// auth names the ways of authenticating that are set, by their keys.
func (n NATS) auth() []string {
	var set []string
	if n.Creds != "" {
		set = append(set, "nats.creds")
	}
	if n.NKeyFile != "" {
		set = append(set, "nats.nkeyFile")
	}
	if n.User != "" || n.PasswordFile != "" || n.Password != "" {
		set = append(set, "nats.user")
	}
	if n.TokenFile != "" || n.Token != "" {
		set = append(set, "nats.tokenFile")
	}
	for _, s := range n.Servers() {
		if u, err := url.Parse(withScheme(s)); err == nil && u.User != nil {
			set = append(set, "credentials in the server URL")
			break
		}
	}
	return set
}

// Validate reports every problem of the NATS section at once, each named
// by its key. Every command that connects checks it (app.Connect), not
// only those that validate the whole configuration. A server URL is shown
// with its credentials redacted.
func (n NATS) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if n.URL != "" && len(n.URLs) > 0 {
		bad("nats.url and nats.urls are both set; use one (nats.url takes a comma-separated list too)")
	}
	servers := n.Servers()
	if len(servers) == 0 {
		bad("nats.url: no server URL")
	}
	for _, s := range servers {
		if err := natsURL(s); err != nil {
			bad("nats.url: %v", err)
		}
	}
	if auth := n.auth(); len(auth) > 1 {
		bad("nats: %s are all set; choose one way to authenticate", strings.Join(auth, ", "))
	}
	switch {
	case n.User == "" && (n.PasswordFile != "" || n.Password != ""):
		bad("nats.user is missing: a password (nats.passwordFile or GUESTFLOW_NATS_PASSWORD) needs the user it belongs to")
	case n.User != "" && n.PasswordFile == "" && n.Password == "":
		bad("nats.user %q has no password: set nats.passwordFile, or GUESTFLOW_NATS_PASSWORD", n.User)
	case n.PasswordFile != "" && n.Password != "":
		bad("nats.passwordFile and GUESTFLOW_NATS_PASSWORD are both set; use one")
	}
	if n.TokenFile != "" && n.Token != "" {
		bad("nats.tokenFile and GUESTFLOW_NATS_TOKEN are both set; use one")
	}
	if (n.TLS.CertFile == "") != (n.TLS.KeyFile == "") {
		bad("nats.tls.certFile and nats.tls.keyFile go together: a client certificate needs its key, and a key its certificate")
	}
	for _, f := range n.files() {
		if *f.path == "" {
			continue
		}
		if err := readable(*f.path); err != nil {
			bad("%s: %v", f.key, err)
		}
	}
	if p := n.InboxPrefix; p != "" && (strings.ContainsAny(p, "*> \t") || strings.HasSuffix(p, ".") || strings.HasPrefix(p, ".")) {
		bad("nats.inboxPrefix %q is not a subject prefix (no wildcards, spaces, or leading or trailing dot)", p)
	}
	switch r := n.Replicas; {
	case r < 0 || r > MaxReplicas:
		bad("nats.replicas %d: JetStream keeps a stream on 1 to %d servers", r, MaxReplicas)
	case r%2 == 0 && r != 0:
		bad("nats.replicas %d: use %d or %d: writes need a majority of the replicas, so %d replicas survive no more lost servers than %d do",
			r, r-1, r+1, r, r-1)
	}
	if b := n.DLQMaxBytes; b != 0 && b != -1 && b < MinDLQMaxBytes {
		bad("nats.dlqMaxBytes %s: at least %s (one dead letter can be as large as the broker's max payload), or -1 for no limit", b, MinDLQMaxBytes)
	}
	return errors.Join(errs...)
}

// readable checks that path is a file this process can open.
func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a folder, not a file", path)
	}
	return nil
}

// natsSchemes are the URL schemes nats.go connects with.
var natsSchemes = map[string]bool{"nats": true, "tls": true, "ws": true, "wss": true}

// withScheme is s as nats.go reads it: "host:port" means nats://host:port.
func withScheme(s string) string {
	if !strings.Contains(s, "://") {
		return "nats://" + s
	}
	return s
}

// natsURL checks one server URL; its errors show it redacted.
func natsURL(s string) error {
	u, err := url.Parse(withScheme(s))
	if err != nil {
		return textsafe.URLError(err)
	}
	if !natsSchemes[u.Scheme] || u.Hostname() == "" {
		return fmt.Errorf("%q is not a NATS server URL (nats://host:port, tls://, ws:// or wss://)", textsafe.URL(s))
	}
	return nil
}

// secretKeys are the keys of the nats section that would hold a secret in
// the file itself, each with where the secret goes instead.
var secretKeys = map[string]string{
	"password": "put it in a file named by nats.passwordFile (readable only by guestflow), or in GUESTFLOW_NATS_PASSWORD",
	"token":    "put it in a file named by nats.tokenFile (readable only by guestflow), or in GUESTFLOW_NATS_TOKEN",
}

// refuseSecrets finds secrets written into the nats section of a parsed
// file: a password or token key, or a server URL with credentials in it.
// Strict decoding would refuse the keys too, but only as unknown, which
// reads like a typo to fix rather than a secret to move.
func refuseSecrets(doc *yaml.Node) error {
	nats := mappingValue(doc, "nats")
	if nats == nil || nats.Kind != yaml.MappingNode {
		return nil
	}
	var errs []error
	for i := 0; i+1 < len(nats.Content); i += 2 {
		k, v := nats.Content[i], nats.Content[i+1]
		if where, ok := secretKeys[k.Value]; ok {
			errs = append(errs, fmt.Errorf("line %d: nats.%s: secrets never go in the configuration file, which more people read than may sign in as guestflow; %s",
				k.Line, k.Value, where))
		}
		if k.Value != "url" && k.Value != "urls" {
			continue
		}
		values := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			values = v.Content
		}
		for _, s := range values {
			for _, one := range splitList(s.Value) {
				if u, err := url.Parse(withScheme(one)); err == nil && u.User != nil {
					errs = append(errs, fmt.Errorf("line %d: nats.%s: %q has credentials in it, and secrets never go in the configuration file; "+
						"use nats.user with nats.passwordFile, nats.tokenFile, or set the URL in GUESTFLOW_NATS_URL", s.Line, k.Value, textsafe.URL(one)))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// mappingValue is the value of key in the document's top-level mapping.
func mappingValue(doc *yaml.Node, key string) *yaml.Node {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
