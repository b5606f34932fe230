// Package intake is guestflow's HTTP door for HR systems: it takes joined
// events as CloudEvents over HTTP (structured, binary and batched), checks
// each one exactly as the invite step will, publishes it on
// guestflow.user.joined and answers only once the broker has stored it. It
// also answers where an onboarding stands, as `guestflow status --json`
// does. Every route needs a credential: a bearer token, an HMAC signature,
// or a client certificate (docs/intake.md).
//
// The package serves HTTP and publishes; it reads no configuration file
// (main does) and does not create the streams (the workers do).
package intake

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/timeline"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// Defaults of Options (and of `guestflow intake`'s flags).
const (
	DefaultListen            = "127.0.0.1:8088"
	DefaultRate              = 100
	DefaultBurst             = 200
	DefaultBodyLimit         = 1 << 20
	DefaultPublishTimeout    = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	// DefaultReloadInterval is how often the credential files are looked
	// at, at most: a token removed from its file stops working within it.
	DefaultReloadInterval = 2 * time.Second
)

// retryUnavailable is the Retry-After of a 503: NATS reconnects every
// second, so a retry this much later finds it back after a short blip.
const retryUnavailable = 2 * time.Second

// statusTimeout bounds GET /v1/onboardings/{id}, which reads the streams.
const statusTimeout = 30 * time.Second

// Options configure the intake. At least one of TokensFile,
// HMACSecretFile and ClientCA must be set.
type Options struct {
	// Listen is the TCP address to serve on.
	Listen string
	// TLSCert and TLSKey serve HTTPS; without them, plain HTTP (behind a
	// TLS-terminating ingress or on loopback).
	TLSCert, TLSKey string
	// ClientCA requires every connection to present a client certificate
	// signed by one of its PEM certificates (mTLS). It needs TLSCert.
	ClientCA string
	// TokensFile holds the bearer tokens, one a line.
	TokensFile string
	// HMACSecretFile holds the HMAC-SHA256 secrets, one a line.
	HMACSecretFile string

	// Rate and Burst are each credential's token bucket: requests per
	// second, and how many may come at once.
	Rate  float64
	Burst int
	// BodyLimit bounds a request body in bytes; a single event is also
	// bounded by events.MaxJoinedSize, as the invite step bounds it.
	BodyLimit int64
	// PublishTimeout bounds the wait for the broker's PubAcks.
	PublishTimeout time.Duration

	ReadTimeout, ReadHeaderTimeout, IdleTimeout time.Duration
	ReloadInterval                              time.Duration

	// Status is how GET /v1/onboardings/{id} reports; JSON is always on.
	Status timeline.Options

	Logger *slog.Logger
	// Now is the clock, for the signature window and the rate limit.
	Now func() time.Time
}

func (o *Options) setDefaults() {
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	if o.Rate == 0 {
		o.Rate = DefaultRate
	}
	if o.Burst == 0 {
		o.Burst = DefaultBurst
	}
	if o.BodyLimit == 0 {
		o.BodyLimit = DefaultBodyLimit
	}
	if o.PublishTimeout == 0 {
		o.PublishTimeout = DefaultPublishTimeout
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.ReadHeaderTimeout == 0 {
		o.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.ReloadInterval == 0 {
		o.ReloadInterval = DefaultReloadInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Server is the intake: an http.Handler, and the server that serves it.
type Server struct {
	o     Options
	nc    *nats.Conn
	js    jetstream.JetStream
	auth  *authenticator
	lim   *limiters
	group groupPublisher
	tls   *tls.Config
	log   *slog.Logger
}

// New checks o, reads the credential files and returns the intake, which
// publishes through nc. A setting that cannot work is an error here, before
// anything listens.
func New(nc *nats.Conn, o Options) (*Server, error) {
	o.setDefaults()
	s, err := build(o)
	if err != nil {
		return nil, err
	}
	// Its own JetStream context: a batch's asynchronous publishes must
	// give up when the answer is due, not linger.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(o.PublishTimeout))
	if err != nil {
		return nil, err
	}
	s.nc, s.js = nc, js
	return s, nil
}

// Validate reports what New would refuse in o, without a connection, so
// that a command can say so before it connects to NATS.
func (o Options) Validate() error {
	o.setDefaults()
	_, err := build(o)
	return err
}

// build checks o and reads its files: every problem at once.
func build(o Options) (*Server, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.TokensFile == "" && o.HMACSecretFile == "" && o.ClientCA == "" {
		bad("no credential configured: give --tokens-file, --hmac-secret-file or --client-ca (every request must authenticate)")
	}
	if o.Rate < 0 {
		bad("--rate %v: requests per second per credential must be more than 0", o.Rate)
	}
	if o.Burst < 1 {
		bad("--burst %d: must be at least 1", o.Burst)
	}
	if o.BodyLimit < 1 {
		bad("--body-limit %d: must be at least 1 byte", o.BodyLimit)
	}
	if o.PublishTimeout < 0 || o.ReadTimeout < 0 || o.ReadHeaderTimeout < 0 || o.IdleTimeout < 0 {
		bad("timeouts must be positive")
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		bad("--tls-cert and --tls-key go together")
	}
	if o.ClientCA != "" && o.TLSCert == "" {
		bad("--client-ca needs --tls-cert and --tls-key: client certificates are checked in the TLS handshake")
	}
	s := &Server{o: o, lim: newLimiters(o.Rate, o.Burst), log: o.Logger}
	s.auth = &authenticator{mtls: o.ClientCA != "", now: o.Now}
	if o.TokensFile != "" {
		f, err := openSecrets(o.TokensFile, "token", o.ReloadInterval, o.Logger, o.Now)
		if err != nil {
			errs = append(errs, err)
		}
		s.auth.tokens = f
	}
	if o.HMACSecretFile != "" {
		f, err := openSecrets(o.HMACSecretFile, "HMAC secret", o.ReloadInterval, o.Logger, o.Now)
		if err != nil {
			errs = append(errs, err)
		}
		s.auth.hmac = f
	}
	if o.TLSCert != "" && o.TLSKey != "" {
		cfg, err := tlsConfig(o.TLSCert, o.TLSKey, o.ClientCA)
		if err != nil {
			errs = append(errs, err)
		}
		s.tls = cfg
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("intake: %w", err)
	}
	return s, nil
}

func tlsConfig(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--client-ca %s: no PEM certificate in it", caFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// TLSConfig is the server's TLS configuration, nil for plain HTTP.
func (s *Server) TLSConfig() *tls.Config { return s.tls }

// Ready says why the intake cannot accept an event now, or nil: NATS is
// not connected, the GUESTFLOW stream is not there (a worker creates it),
// or no credential file vouches for anyone. It is the readiness check the
// ops endpoints serve.
func (s *Server) Ready() error {
	if !s.nc.IsConnected() {
		return fmt.Errorf("not connected to NATS (%s)", s.nc.Status())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.js.Stream(ctx, worker.Stream); err != nil {
		return fmt.Errorf("stream %s: %w (a worker creates it when it starts)", worker.Stream, err)
	}
	return s.auth.ready()
}

// Listen opens the listening socket (with TLS when configured), so that a
// taken port is an error before anything else starts.
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.o.Listen)
	if err != nil {
		return nil, fmt.Errorf("intake: %w", err)
	}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	return ln, nil
}

// URL is the base URL of the intake on ln.
func (s *Server) URL(ln net.Listener) string {
	if s.tls != nil {
		return "https://" + ln.Addr().String()
	}
	return "http://" + ln.Addr().String()
}

// Serve serves on ln until ctx ends, then lets the requests in flight
// finish (they wait for PubAcks, bounded by PublishTimeout) before it
// returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadTimeout:       s.o.ReadTimeout,
		ReadHeaderTimeout: s.o.ReadHeaderTimeout,
		IdleTimeout:       s.o.IdleTimeout,
		// Binary-mode events travel in headers; they are bounded with the
		// body at 64 KiB, so this leaves room for the rest.
		MaxHeaderBytes: 2 * events.MaxJoinedSize,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		// Requests in flight outlive ctx: Shutdown waits for them.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("intake: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.o.PublishTimeout+5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("intake: shutdown: %w", err)
	}
	return nil
}

// ServeHTTP authenticates, rate-limits and routes a request. The
// credential comes first on every route, so that nothing about the
// intake, not even which paths exist, is told to a stranger.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.o.Now()
	route, id := routeOf(r.URL.EscapedPath())
	rec := &recorder{ResponseWriter: w}
	defer func() {
		requestsTotal.WithLabelValues(route, strconv.Itoa(rec.status())).Inc()
		requestDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	}()
	h := rec.Header()
	h["Cache-Control"], h["X-Content-Type-Options"] = noStore, noSniff

	var body []byte
	if wantsBody(r) {
		var rerr *requestError
		if body, rerr = readBody(rec, r, s.o.BodyLimit, "a request"); rerr != nil {
			s.answer(rec, rerr)
			return
		}
	}
	cred, aerr := s.auth.authenticate(r, body)
	if aerr != nil {
		s.log.Info("request refused: no valid credential", "remote", r.RemoteAddr, "method", r.Method, "route", route, "why", aerr.msg)
		if s.auth.tokens != nil {
			rec.Header().Set("WWW-Authenticate", `Bearer realm="guestflow"`)
		}
		s.answer(rec, errorf(http.StatusUnauthorized, "%s", aerr.msg))
		return
	}
	if ok, wait := s.lim.allow(cred.key, start); !ok {
		rec.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
		s.answer(rec, errorf(http.StatusTooManyRequests, "more than %g requests a second (burst %d) from this credential; wait as Retry-After says", s.o.Rate, s.o.Burst))
		return
	}
	switch route {
	case routeEvents:
		switch r.Method {
		case http.MethodPost:
			s.postEvents(rec, r, body, cred)
		case http.MethodOptions:
			s.options(rec, r)
		default:
			rec.Header().Set("Allow", "OPTIONS, POST")
			s.answer(rec, errorf(http.StatusMethodNotAllowed, "%s %s: events are POSTed", r.Method, routeEvents))
		}
	case routeOnboardings:
		if r.Method != http.MethodGet {
			rec.Header().Set("Allow", "GET")
			s.answer(rec, errorf(http.StatusMethodNotAllowed, "%s %s: an onboarding is read with GET", r.Method, r.URL.Path))
			return
		}
		s.getOnboarding(rec, r, id)
	default:
		s.answer(rec, errorf(http.StatusNotFound, "no such route: POST %s takes events, GET /v1/onboardings/{id} tells where one stands", routeEvents))
	}
}

// Header values every answer carries, shared: they are never changed.
var (
	noStore = []string{"no-store"}
	noSniff = []string{"nosniff"}
)

// routeOf names the route of path (escaped, as sent), and the onboarding
// id in it: an id may hold a slash, sent as %2F.
func routeOf(path string) (route, id string) {
	if path == routeEvents {
		return routeEvents, ""
	}
	if seg, ok := strings.CutPrefix(path, "/v1/onboardings/"); ok && seg != "" && !strings.Contains(seg, "/") {
		if id, err := url.PathUnescape(seg); err == nil {
			return routeOnboardings, id
		}
	}
	return routeOther, ""
}

// recorder remembers the status written, for the metrics.
type recorder struct {
	http.ResponseWriter
	code int
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
