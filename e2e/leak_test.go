package e2e

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/guestflow/guestflow/internal/dlq"
	"github.com/guestflow/guestflow/internal/graphsim"
	"github.com/guestflow/guestflow/internal/timeline"
	"github.com/guestflow/guestflow/internal/worker"
)

// syncBuffer is a bytes.Buffer that many workers' loggers write to at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNoSecretReachesAnyOutput runs onboardings at Debug level through
// failures of every kind — 401 (a wrong secret), 403 (a denied route), 429
// (a spent budget), injected 5xx and dropped connections — and scans all
// that guestflow writes for an operator to read: the logs, every dead
// letter's headers and body, and the text and JSON of `status`, `dlq list`
// and `dlq show`, and the metrics. No client secret, no token the emulator issued and no
// Authorization value may appear in any of it. Redaction belongs at the
// source (the error types); this test does not filter anything.
func TestNoSecretReachesAnyOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two systems through faults; skipped with -short")
	}
	const wrongSecret = "not-the-secret-but-still-a-secret"
	var outputs []string
	var tokens []string
	run := func(name string, opts graphsim.Options, secret string, n int) {
		logs := &syncBuffer{}
		s := start(t, opts, func(su *setup) {
			if secret != "" {
				su.credentials.ClientSecret = secret
			}
			su.worker.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			su.worker.MaxFailures = 3
		})
		var emails []string
		for i := range n {
			email := fmt.Sprintf("%s.%d@fabrikam.com", name, i)
			emails = append(emails, email)
			s.publishJoined(fmt.Sprintf("%s-%d", name, i), sales(email))
		}
		s.settleWithin(3 * time.Minute)
		ctx := context.Background()
		letters, err := dlq.List(ctx, s.js, dlq.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(letters) == 0 {
			t.Errorf("%s: no dead letter; the run must fail in the ways it is meant to", name)
		}
		var out bytes.Buffer
		for _, write := range []func() error{
			func() error { return dlq.WriteTable(&out, letters) },
			func() error { return dlq.WriteJSON(&out, letters) },
			func() error { return dlq.WriteDetails(&out, letters) },
		} {
			if err := write(); err != nil {
				t.Fatal(err)
			}
		}
		for _, l := range letters {
			for k, vs := range l.Header {
				out.WriteString(k + ": " + strings.Join(vs, ", ") + "\n")
			}
			out.Write(l.Data)
		}
		for _, email := range emails {
			for _, json := range []bool{false, true} {
				if _, err := timeline.Status(ctx, s.js, email, timeline.Options{JSON: json}, &out); err != nil {
					t.Errorf("status %s: %v", email, err)
				}
			}
		}
		outputs = append(outputs, name+" logs\n"+logs.String(), name+" operator output\n"+out.String())
		tokens = append(tokens, s.sim.IssuedTokens()...)
		t.Logf("%s: %d dead letters, %d log bytes, %d tokens issued", name, len(letters), len(logs.String()), len(s.sim.IssuedTokens()))
	}

	run("faults", graphsim.Options{
		SyncDelay: 50 * time.Millisecond, FaultRate: 0.2, DropRate: 0.05,
		WriteLimit: graphsim.Limit{N: 6, Per: time.Second},
		Deny:       []string{"POST /v1.0/users/{id}/sendMail"},
	}, "", 8)
	run("wrongsecret", graphsim.Options{}, wrongSecret, 2)
	// The workers ran in this process: the default registry holds their
	// metrics, labels included.
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	for _, f := range families {
		if _, err := expfmt.MetricFamilyToText(&metrics, f); err != nil {
			t.Fatal(err)
		}
	}
	outputs = append(outputs, "metrics\n"+metrics.String())

	if len(tokens) == 0 {
		t.Fatal("the emulator issued no token: the scan would prove nothing")
	}
	secrets := map[string]string{
		"the client secret":       graphsim.DefaultClientSecret,
		"the wrong client secret": wrongSecret,
		"an Authorization value":  "Bearer ey",
		"a client_secret field":   "client_secret=",
	}
	for i, tok := range tokens {
		secrets[fmt.Sprintf("issued token %d", i)] = tok
		// A token's signature alone is a secret too: the part after the
		// last dot.
		secrets[fmt.Sprintf("the signature of token %d", i)] = tok[strings.LastIndexByte(tok, '.')+1:]
	}
	for _, o := range outputs {
		what, _, _ := strings.Cut(o, "\n")
		for name, secret := range secrets {
			if i := strings.Index(o, secret); i >= 0 {
				t.Errorf("%s contains %s: …%s…", what, name, o[max(0, i-80):min(len(o), i+len(secret)+20)])
			}
		}
	}
}

// settleWithin waits until no step has work pending or in flight.
func (s *system) settleWithin(d time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for {
		idle := true
		for _, name := range []string{"invite", "license", "role", "notify"} {
			c, err := s.js.Consumer(context.Background(), worker.Stream, name)
			if err != nil {
				idle = false
				break
			}
			info, err := c.Info(context.Background())
			if err != nil || info.NumAckPending != 0 || info.NumPending != 0 {
				idle = false
				break
			}
		}
		if idle {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the system did not settle within %s", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
