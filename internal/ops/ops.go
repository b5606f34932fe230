// Package ops is the HTTP server every long-running guestflow command can
// open for its operators: liveness and readiness probes, Prometheus
// metrics and, on request, pprof. It has a mux of its own: nothing
// registered on http.DefaultServeMux (net/http/pprof's init does register
// there) is ever served.
package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness condition: Run returns nil when it holds, and
// otherwise an error that says what is missing.
type Check struct {
	Name string
	Run  func(ctx context.Context) error
}

// Options configure the server.
type Options struct {
	// Addr is the listen address, e.g. ":9464" or "127.0.0.1:9464".
	Addr string
	// Pprof serves net/http/pprof under /debug/pprof/.
	Pprof bool
	// Checks must all pass for /readyz to answer 200.
	Checks []Check
	// CheckTimeout bounds each check of one /readyz request; the checks
	// run at once. 0 means DefaultCheckTimeout.
	CheckTimeout time.Duration
	Logger       *slog.Logger
}

// DefaultCheckTimeout stays below the two seconds a probe should be given
// (timeoutSeconds: 2 or more), so that a slow check reports itself rather
// than the probe timing out without a word.
const DefaultCheckTimeout = 1500 * time.Millisecond

// Server timeouts. The write timeout leaves room for a CPU profile or an
// execution trace of up to a minute (/debug/pprof/profile?seconds=60).
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 90 * time.Second
	idleTimeout       = 2 * time.Minute
	shutdownTimeout   = 5 * time.Second
)

// Server is a running ops server.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
	err  error
	once sync.Once
}

// Start listens on o.Addr and serves until Shutdown. /readyz fails once
// ctx ends (the command is stopping: its workers drain), while /livez and
// the rest go on answering until Shutdown, so that a draining worker is
// neither restarted nor left unwatched.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = DefaultCheckTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("ops server: %s is already in use: another process listens there (another guestflow?); pick a free one with --ops-addr", o.Addr)
		}
		return nil, fmt.Errorf("ops server on %s: %w", o.Addr, err)
	}
	checks := append([]Check{stopping(ctx)}, o.Checks...)
	s := &Server{
		srv: &http.Server{
			Handler:           newMux(o, checks),
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
		},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.err = err
			o.Logger.Error("ops server stopped", "addr", s.Addr(), "err", err)
		}
	}()
	o.Logger.Info("ops server listening", "addr", s.Addr(), "pprof", o.Pprof)
	return s, nil
}

// Addr is the address the server listens on, with the port it got.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown stops accepting connections and lets the requests in flight
// finish, for up to five seconds. It is safe to call more than once.
func (s *Server) Shutdown() error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			_ = s.srv.Close()
		}
		<-s.done
	})
	return s.err
}

func newMux(o Options, checks []Check) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /readyz", readyz(checks, o.CheckTimeout))
	// The default registry: the Go and process collectors, and every
	// metric guestflow registers on prometheus.DefaultRegisterer.
	mux.Handle("GET /metrics", promhttp.Handler())
	if o.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// result is one check's outcome in a /readyz answer.
type result struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// readyz runs every check at once and answers 200 when all pass, else 503
// naming the failed ones: plain text, or JSON when the client accepts
// application/json (or asks ?format=json).
func readyz(checks []Check, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		results := make([]result, len(checks))
		var wg sync.WaitGroup
		for i, c := range checks {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(r.Context(), timeout)
				defer cancel()
				results[i] = result{Name: c.Name, OK: true}
				if err := run(ctx, c, timeout); err != nil {
					results[i] = result{Name: c.Name, Error: err.Error()}
				}
			})
		}
		wg.Wait()
		ready := true
		var failed []string
		for _, res := range results {
			if !res.OK {
				ready = false
				failed = append(failed, res.Name)
			}
		}
		status := http.StatusOK
		if !ready {
			status = http.StatusServiceUnavailable
		}
		w.Header().Set("Cache-Control", "no-store")
		if r.URL.Query().Get("format") == "json" || strings.Contains(r.Header.Get("Accept"), "application/json") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(struct {
				Ready  bool     `json:"ready"`
				Failed []string `json:"failed,omitempty"`
				Checks []result `json:"checks"`
			}{ready, failed, results})
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		var b strings.Builder
		if ready {
			b.WriteString("ready\n")
		} else {
			fmt.Fprintf(&b, "not ready: %s\n", strings.Join(failed, ", "))
		}
		for _, res := range results {
			if res.OK {
				fmt.Fprintf(&b, "ok    %s\n", res.Name)
			} else {
				fmt.Fprintf(&b, "fail  %s: %s\n", res.Name, res.Error)
			}
		}
		_, _ = w.Write([]byte(b.String()))
	})
}

// run runs c, reporting a check that outlives its context as failed
// without waiting for it.
func run(ctx context.Context, c Check, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no answer within %s", timeout)
	}
}

// stopping fails once ctx ends.
func stopping(ctx context.Context) Check {
	return Check{Name: "running", Run: func(context.Context) error {
		if ctx.Err() != nil {
			return errors.New("shutting down")
		}
		return nil
	}}
}
