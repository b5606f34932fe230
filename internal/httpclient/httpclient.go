// Package httpclient builds the one *http.Client every Microsoft call goes
// through, trusting an extra CA (the emulator's) beside the system roots,
// and counting every request in the remote-request metrics (Instrument).
package httpclient

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"
)

// New returns a client that trusts the system roots and, when caFile is not
// empty, the PEM certificates in it. Timeout bounds one whole call, so a
// hung connection becomes a retryable error instead of a stuck worker.
func New(caFile string, timeout time.Duration) (*http.Client, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("tenant.caFile: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tenant.caFile %s: no PEM certificate in it", caFile)
		}
	}
	return WithPool(pool, timeout), nil
}

// WithPool returns a client trusting exactly pool.
func WithPool(pool *x509.CertPool, timeout time.Duration) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	t.MaxIdleConnsPerHost = 64
	return &http.Client{
		Transport: Instrument(t),
		Timeout:   timeout,
		// Microsoft's APIs answer with a status; following a redirect would
		// send a bearer token somewhere it was not meant for.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
