package graphsim

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Start listens on addr (such as 127.0.0.1:9443 or 127.0.0.1:0) and serves
// TLS in the background until Close; the neighbour, if any, starts spending
// now, and its schedule's offsets count from here.
func (s *Sim) Start(addr string) error {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.srv != nil {
		return errors.New("graphsim: already started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("graphsim: %w", err)
	}
	s.url = "https://" + advertisedHost(ln.Addr().(*net.TCPAddr))
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{s.tlsCert},
		},
	}
	go s.srv.ServeTLS(ln, "", "") //nolint:errcheck // returns ErrServerClosed after Close
	if s.neighbour != nil {
		s.neighbour.start(s, s.now())
	}
	return nil
}

// advertisedHost names a listener the way clients should reach it: a
// wildcard address becomes the loopback address the certificate covers.
func advertisedHost(a *net.TCPAddr) string {
	ip := a.IP
	switch {
	case ip == nil || ip.IsUnspecified() || ip.To4() != nil && ip.IsLoopback():
		return fmt.Sprintf("127.0.0.1:%d", a.Port)
	case ip.IsLoopback():
		return fmt.Sprintf("[::1]:%d", a.Port)
	}
	return a.String()
}

// URL is the emulator's base URL, https://127.0.0.1:PORT, without a
// trailing slash; empty before Start.
func (s *Sim) URL() string {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	return s.url
}

// Close stops the server and the neighbour, and drops open connections.
func (s *Sim) Close() error {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.srv == nil {
		return nil
	}
	if s.neighbour != nil {
		s.neighbour.halt()
	}
	err := s.srv.Close()
	s.srv = nil
	return err
}

// baseURL is the emulator's own URL as seen by the request: URL() once
// started, otherwise the request's host (Handler mounted elsewhere).
func (s *Sim) baseURL(r *http.Request) string {
	if u := s.URL(); u != "" {
		return u
	}
	return origin(r)
}

// origin is the scheme and host a request was sent to. Audiences are checked
// against it, as Graph only accepts tokens issued for itself.
func origin(r *http.Request) string { return "https://" + strings.ToLower(r.Host) }

// routes wires the five families of endpoints (Entra, Graph, Dataverse, the
// Power Platform admin API, /_sim). API calls get their own
// pipeline (api.go); Entra's endpoints, the instance landing pages and /_sim
// are plain handlers on ServeMux.
func (s *Sim) routes() http.Handler {
	site := http.NewServeMux()
	site.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", s.handleOpenIDConfig)
	site.HandleFunc("POST /{tenant}/oauth2/v2.0/token", s.handleToken)
	site.HandleFunc("GET /{tenant}/discovery/v2.0/keys", s.handleKeys)
	site.HandleFunc("GET /instances/{instance}", s.handleInstancePage)
	site.HandleFunc("GET /instances/{instance}/{$}", s.handleInstancePage)
	inspect := s.inspectRoutes()

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if s.opts.Logf != nil {
				s.opts.Logf("graphsim: %s %s -> %d (%s)", r.Method, r.URL.RequestURI(), rec.status, time.Since(start).Round(time.Microsecond))
			}
		}()
		p := r.URL.Path
		switch {
		case strings.HasPrefix(p, "/v1.0/"):
			s.serveAPI(rec, r, apiGraph)
		case isDataversePath(p):
			s.serveAPI(rec, r, apiDataverse)
		case isBAPPath(p):
			s.serveAPI(rec, r, apiBAP)
		case strings.HasPrefix(p, "/_sim/"):
			serveMux(inspect, rec, r)
		default:
			serveMux(site, rec, r)
		}
	})
}

// isDataversePath tells API calls below an instance from the instance URL
// itself, which is a landing page for people.
func isDataversePath(p string) bool {
	parts := strings.SplitN(p, "/", 4) // "", "instances", name, rest
	return len(parts) == 4 && parts[1] == "instances" && parts[2] != "" && parts[3] != ""
}

// serveMux dispatches to mux but answers unknown routes in JSON, because
// ServeMux's own 404 and 405 bodies are text/plain.
func serveMux(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
	if _, pattern := mux.Handler(r); pattern == "" {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{
			"code":    "NotFound",
			"message": fmt.Sprintf("graphsim has no endpoint %s %s", r.Method, r.URL.Path),
		}})
		return
	}
	mux.ServeHTTP(w, r)
}

// handleInstancePage is where an invitation redemption lands by default
// (the instance URL): a person following the link sees where they are.
func (s *Sim) handleInstancePage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("instance")
	if s.instances[name] == nil {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{
			"code": "NotFound", "message": fmt.Sprintf("graphsim has no instance %q", name)}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"instance": name,
		"message":  "Dynamics 365 environment emulated by guestflow graphsim; the Web API is below /api/data/v9.2",
	})
}

// recorder remembers the status for statistics and logs.
type recorder struct {
	http.ResponseWriter
	status   int
	wrote    bool
	canceled bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}
