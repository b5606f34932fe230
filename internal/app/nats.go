package app

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/textsafe"
)

// Connect opens a NATS connection as c says, for every command alike: the
// servers, the one way of authenticating, TLS. It keeps reconnecting, as a
// broker restart must not end a worker. c is validated first (the commands
// that read only the NATS section do not validate the rest), and a file it
// names that cannot be used is reported by its key. Errors show the server
// URLs with their credentials redacted, nats.go's own parse error
// included, because they end up on stderr and in logs.
func Connect(c config.NATS, name string) (*nats.Conn, jetstream.JetStream, error) {
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	opts, err := natsOptions(c, name)
	if err != nil {
		return nil, nil, err
	}
	servers := c.Servers()
	nc, err := nats.Connect(strings.Join(servers, ","), opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("NATS %s: %w", textsafe.URL(strings.Join(servers, ", ")), textsafe.URLError(err))
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// natsOptions are the nats.go options of c. The password, token and
// .creds files are read again at every reconnect, so that a rotated secret
// is picked up without a restart; nats.go reads an nkey seed file at every
// connect too, but keeps the public key it read first.
func natsOptions(c config.NATS, name string) ([]nats.Option, error) {
	opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second), nats.ErrorHandler(logAsyncError)}
	if c.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(c.InboxPrefix))
	}
	switch {
	case c.Creds != "":
		opts = append(opts, nats.UserCredentials(c.Creds))
	case c.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats.nkeyFile %s: %w", c.NKeyFile, err)
		}
		opts = append(opts, o)
	case c.User != "" && c.PasswordFile != "":
		password, err := secretFile("nats.passwordFile", c.PasswordFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserInfoHandler(func() (string, string) { return c.User, password() }))
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.TokenFile != "":
		token, err := secretFile("nats.tokenFile", c.TokenFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.TokenHandler(token))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	}
	if c.TLS.Enabled() {
		tlsOpts, err := tlsOptions(c.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, tlsOpts...)
	}
	return opts, nil
}

// tlsOptions make the connection use TLS, whatever the URLs' scheme: nats.go
// upgrades a nats:// connection when Secure is set, and refuses a server
// that does not offer TLS. The files are loaded here first so that a bad
// one is reported by its key rather than by nats.go's "error loading".
func tlsOptions(t config.NATSTLS) ([]nats.Option, error) {
	opts := []nats.Option{nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName})}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("nats.tls.caFile: %w", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("nats.tls.caFile %s: no PEM certificate in it", t.CAFile)
		}
		opts = append(opts, nats.RootCAs(t.CAFile))
	}
	if t.CertFile != "" {
		if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
			return nil, fmt.Errorf("nats.tls.certFile %s and nats.tls.keyFile %s: %w", t.CertFile, t.KeyFile, err)
		}
		opts = append(opts, nats.ClientCert(t.CertFile, t.KeyFile))
	}
	return opts, nil
}

// secretFile reads the secret in path now, failing by key when it cannot,
// and returns a function that reads it again, keeping the last secret read
// should the file be unreadable for a moment (a rotation that replaces
// it). A final line break is not part of the secret.
func secretFile(key, path string) (func() string, error) {
	read := func() (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("%s: %w", key, err)
		}
		s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if s == "" {
			return "", fmt.Errorf("%s %s is empty", key, path)
		}
		return s, nil
	}
	last, err := read()
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		if s, err := read(); err == nil {
			last = s
		}
		return last
	}, nil
}

// logAsyncError logs what nats.go reports outside any call (a slow
// consumer, a permissions violation) on slog's default logger, which main
// sets from --log-format and --log-level: nats.go's own handler would print
// it on stderr as plain text.
func logAsyncError(nc *nats.Conn, sub *nats.Subscription, err error) {
	args := []any{"err", err}
	if sub != nil {
		args = append(args, "subject", sub.Subject)
	}
	slog.Default().Warn("NATS reported an error", args...)
}
