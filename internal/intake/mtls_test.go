package intake_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/guestflow/guestflow/internal/intake"
)

// authority is a test CA.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newAuthority(t *testing.T, name string) *authority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &authority{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate and its key, PEM-encoded.
func (a *authority) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: []string{"Fabrikam HR"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func (a *authority) client(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	c, k := a.issue(t, cn, x509.ExtKeyUsageClientAuth)
	pair, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// TestIntakeTakesClientCertificates: with --client-ca alone, a verified
// certificate is the credential, rate-limited by its subject; a
// connection without one, or with one of another CA, never gets a
// request through.
func TestIntakeTakesClientCertificates(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA, strangerCA := newAuthority(t, "server CA"), newAuthority(t, "HR clients"), newAuthority(t, "stranger")
	certPEM, keyPEM := serverCA.issue(t, "intake", x509.ExtKeyUsageServerAuth)
	certFile, keyFile, caFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "clients.pem")
	writeFile(t, certFile, string(certPEM))
	writeFile(t, keyFile, string(keyPEM))
	writeFile(t, caFile, string(clientCA.pem))

	r := newRig(t) // for its broker and streams
	srv, err := intake.New(r.nc, intake.Options{TLSCert: certFile, TLSKey: keyFile, ClientCA: caFile, Rate: 0.1, Burst: 1})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv)
	hs.TLS = srv.TLSConfig()
	hs.StartTLS()
	t.Cleanup(hs.Close)
	roots := x509.NewCertPool()
	roots.AddCert(serverCA.cert)
	post := func(cert *tls.Certificate, id string) (*http.Response, error) {
		cfg := &tls.Config{RootCAs: roots}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		resp, err := c.Post(hs.URL+"/v1/events", "application/cloudevents+json", bytes.NewReader(joined(id, id+"@fabrikam.com")))
		if err == nil {
			t.Cleanup(func() { resp.Body.Close() })
		}
		return resp, err
	}
	workday, successfactors := clientCA.client(t, "workday"), clientCA.client(t, "successfactors")
	resp, err := post(&workday, "m-1")
	if err != nil {
		t.Fatal(err)
	}
	expect(t, resp, http.StatusAccepted, nil)
	resp, err = post(&workday, "m-2")
	if err != nil {
		t.Fatal(err)
	}
	expect(t, resp, http.StatusTooManyRequests, nil)
	resp, err = post(&successfactors, "m-2")
	if err != nil {
		t.Fatal(err)
	}
	expect(t, resp, http.StatusAccepted, nil)

	stranger := strangerCA.client(t, "workday")
	for name, cert := range map[string]*tls.Certificate{"no certificate": nil, "another CA": &stranger} {
		if resp, err := post(cert, "m-3"); err == nil {
			t.Errorf("%s: answered %s", name, resp.Status)
		}
	}
	if ids := r.storedIDs(); !equal(ids, []string{"m-1", "m-2"}) {
		t.Errorf("stored %q", ids)
	}

	// Beside tokens, the certificate lets the connection in and the
	// token identifies the sender.
	both, err := intake.New(r.nc, intake.Options{TLSCert: certFile, TLSKey: keyFile, ClientCA: caFile, TokensFile: r.tokens})
	if err != nil {
		t.Fatal(err)
	}
	hs2 := httptest.NewUnstartedServer(both)
	hs2.TLS = both.TLSConfig()
	hs2.StartTLS()
	t.Cleanup(hs2.Close)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{workday}}}}
	for token, want := range map[string]int{"": http.StatusUnauthorized, tokenA: http.StatusAccepted} {
		req, _ := http.NewRequest(http.MethodPost, hs2.URL+"/v1/events", bytes.NewReader(joined("m-4", "m4@fabrikam.com")))
		req.Header.Set("Content-Type", "application/cloudevents+json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		expect(t, resp, want, nil)
	}
}
