package app_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/guestflow/guestflow/internal/app"
	"github.com/guestflow/guestflow/internal/broker/brokertest"
	"github.com/guestflow/guestflow/internal/config"
)

// secret writes s to a file and returns its path.
func secret(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// connects reports whether Connect with c succeeds, failing the test with
// the error when want says it should.
func connects(t *testing.T, c config.NATS, want bool) error {
	t.Helper()
	nc, _, err := app.Connect(c, "test")
	if err == nil {
		defer nc.Close()
	}
	if (err == nil) != want {
		t.Errorf("Connect(%+v): error %v, want success %v", c, err, want)
	}
	return err
}

func TestConnectWithAToken(t *testing.T) {
	ns := brokertest.Start(t, func(o *server.Options) { o.Authorization = "s3cr3t-t0ken" })
	url := ns.ClientURL()
	connects(t, config.NATS{URL: url, TokenFile: secret(t, "s3cr3t-t0ken\n")}, true)
	connects(t, config.NATS{URL: url, Token: "s3cr3t-t0ken"}, true)
	if err := connects(t, config.NATS{URL: url, TokenFile: secret(t, "wrong")}, false); err != nil && strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error shows the token: %v", err)
	}
	if err := connects(t, config.NATS{URL: url, TokenFile: secret(t, "\n")}, false); err == nil || !strings.Contains(err.Error(), "nats.tokenFile") {
		t.Errorf("an empty token file: %v", err)
	}
}

func TestConnectWithAUserAndPassword(t *testing.T) {
	ns := brokertest.Start(t, func(o *server.Options) {
		o.Users = []*server.User{{Username: "guestflow-invite", Password: "hunter2"}}
	})
	url := ns.ClientURL()
	connects(t, config.NATS{URL: url, User: "guestflow-invite", PasswordFile: secret(t, "hunter2\r\n")}, true)
	connects(t, config.NATS{URL: url, User: "guestflow-invite", Password: "hunter2"}, true)
	connects(t, config.NATS{URL: url, User: "guestflow-invite", Password: "hunter3"}, false)
	connects(t, config.NATS{URL: url}, false)
}

func TestConnectWithAnNKey(t *testing.T) {
	seed, public := brokertest.NewUserNKey(t)
	ns := brokertest.Start(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: public}} })
	connects(t, config.NATS{URL: ns.ClientURL(), NKeyFile: seed}, true)
	other, _ := brokertest.NewUserNKey(t)
	connects(t, config.NATS{URL: ns.ClientURL(), NKeyFile: other}, false)
	if err := connects(t, config.NATS{URL: ns.ClientURL(), NKeyFile: secret(t, "not a seed")}, false); err == nil || !strings.Contains(err.Error(), "nats.nkeyFile") {
		t.Errorf("a file that holds no seed: %v", err)
	}
}

// A nats:// URL with TLS settings connects with TLS, verifying the server
// by the configured name and showing the client certificate.
func TestConnectWithTLS(t *testing.T) {
	certs := brokertest.NewCerts(t, "nats.guestflow.test")
	ns := brokertest.Start(t, func(o *server.Options) {
		o.TLS, o.TLSVerify, o.TLSConfig, o.TLSTimeout = true, true, certs.ServerTLS(), 2
	})
	url := "nats://" + ns.Addr().String()
	good := config.NATSTLS{CAFile: certs.CAFile, CertFile: certs.ClientCertFile, KeyFile: certs.ClientKeyFile, ServerName: "nats.guestflow.test"}
	nc, _, err := app.Connect(config.NATS{URL: url, TLS: good}, "test")
	if err != nil {
		t.Fatal(err)
	}
	st, err := nc.TLSConnectionState()
	nc.Close()
	if err != nil || !st.HandshakeComplete || len(st.PeerCertificates) == 0 || st.PeerCertificates[0].DNSNames[0] != "nats.guestflow.test" {
		t.Errorf("no TLS: %v %+v", err, st)
	}
	noName := good
	noName.ServerName = ""
	// The certificate is not for 127.0.0.1.
	if err := connects(t, config.NATS{URL: url, TLS: noName}, false); err != nil && !strings.Contains(err.Error(), "certificate") {
		t.Errorf("the error does not say that the certificate failed: %v", err)
	}
	noCert := good
	noCert.CertFile, noCert.KeyFile = "", ""
	connects(t, config.NATS{URL: url, TLS: noCert}, false)
	connects(t, config.NATS{URL: url}, false) // the server requires TLS
}

func TestConnectNamesTheKeyOfABadFile(t *testing.T) {
	certs := brokertest.NewCerts(t, "nats.guestflow.test")
	garbage := secret(t, "not PEM")
	for _, tc := range []struct {
		tls  config.NATSTLS
		want string
	}{
		{config.NATSTLS{CAFile: garbage}, "nats.tls.caFile " + garbage + ": no PEM certificate"},
		{config.NATSTLS{CertFile: garbage, KeyFile: certs.ClientKeyFile}, "nats.tls.certFile " + garbage},
		{config.NATSTLS{CertFile: certs.ClientCertFile, KeyFile: filepath.Join(t.TempDir(), "gone.pem")}, "nats.tls.keyFile: open"},
	} {
		_, _, err := app.Connect(config.NATS{URL: "nats://127.0.0.1:1", TLS: tc.tls}, "test")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: want %q in the error, got %v", tc.tls, tc.want, err)
		}
	}
}

func TestConnectUsesEveryServer(t *testing.T) {
	ns := brokertest.Start(t, nil)
	// The first server is down; the second is there.
	connects(t, config.NATS{URLs: []string{"nats://127.0.0.1:1", ns.ClientURL()}}, true)
	connects(t, config.NATS{URL: "nats://127.0.0.1:1, " + ns.ClientURL()}, true)
}
