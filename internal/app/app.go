// Package app wires the steps to their dependencies: the Graph client, the
// Dataverse client and the sent log, all on one credential and one HTTP
// client. main and the end-to-end tests build workers the same way through it.
package app

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/guestflow/guestflow/functions/invite"
	"github.com/guestflow/guestflow/functions/license"
	"github.com/guestflow/guestflow/functions/notify"
	"github.com/guestflow/guestflow/functions/role"
	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/dataverse"
	"github.com/guestflow/guestflow/internal/graph"
	"github.com/guestflow/guestflow/internal/identity"
	"github.com/guestflow/guestflow/internal/memo"
	"github.com/guestflow/guestflow/internal/telemetry"
	"github.com/guestflow/guestflow/internal/throttle"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// StepNames are the steps in flow order.
var StepNames = []string{invite.Name, license.Name, role.Name, notify.Name}

// Credentials are the app's identity. main reads them from the standard
// azidentity variables (AZURE_CLIENT_ID, AZURE_CLIENT_SECRET); without a
// secret, azidentity's default chain is used.
type Credentials struct{ ClientID, ClientSecret string }

// StepOptions are per-step settings.
type StepOptions struct {
	// SyncDeadline is how long the role step waits for the Dataverse sync.
	SyncDeadline time.Duration
	// Throttle shares the tenant's Graph budget with every other worker;
	// nil leaves each worker on its own (the benchmark's baseline).
	Throttle *throttle.Options
	// SDKRetry turns kiota's retry handler on (the baseline only).
	SDKRetry bool
	// TracerProvider traces the steps and their Graph and Dataverse
	// calls (package telemetry); nil means the global provider, a no-op
	// one unless telemetry.Start set it.
	TracerProvider trace.TracerProvider
	// Token, when set, learns whether the steps' credential has produced
	// a token: a readiness check for the ops server.
	Token *FirstToken
	// Replicas is how many servers of a JetStream cluster keep the
	// buckets the steps open (memo, throttle), as nats.replicas says; the
	// workers' streams and buckets take theirs from worker.Options.
	Replicas int
}

// BuildSteps wires the named steps to Graph, Dataverse, the tenant's shared
// budget and the memo.
func BuildSteps(ctx context.Context, cfg config.Config, creds Credentials, js jetstream.JetStream, names []string, so StepOptions) ([]worker.Step, error) {
	hc, cred, err := appIdentity(cfg, creds, so.TracerProvider)
	if err != nil {
		return nil, err
	}
	cred = newCachedCredential(cred)
	if so.Token != nil {
		cred = so.Token.watch(cred, graphScope(cfg.Tenant.GraphURL))
	}
	gopts := graph.Options{SDKRetry: so.SDKRetry}
	dvc := hc
	if so.Throttle != nil {
		to := *so.Throttle
		to.Replicas = so.Replicas
		gate, err := throttle.Open(ctx, js, to)
		if err != nil {
			return nil, err
		}
		gopts.Wrap = gate.Transport
		dvc = withTransport(hc, gate.DataverseTransport)
	}
	gc, err := graph.New(cred, cfg.Tenant.GraphURL, hc, gopts)
	if err != nil {
		return nil, err
	}
	// The memo is opened only when a step is built: every step keeps or
	// checks the invite step's records, but a process that builds no
	// step needs no key-value bucket.
	var store *memo.Store
	openMemo := func() (*memo.Store, error) {
		if store != nil {
			return store, nil
		}
		var err error
		store, err = memo.Open(ctx, js, memo.Options{Replicas: so.Replicas})
		return store, err
	}
	var steps []worker.Step
	for _, n := range names {
		m, err := openMemo()
		if err != nil {
			return nil, err
		}
		verify := identity.New(m, gc, cfg.Instances)
		var s worker.Step
		switch n {
		case invite.Name:
			s = worker.Step{Subject: events.SubjectJoined, Handler: invite.New(gc, m, cfg.Instances)}
		case license.Name:
			s = worker.Step{Subject: events.SubjectInvited, Handler: license.New(gc, verify)}
		case role.Name:
			s = worker.Step{Subject: events.SubjectLicensed, Handler: role.New(dataverse.New(cred, dvc), verify, cfg.Tenant.PowerPlatformURL, so.SyncDeadline)}
		case notify.Name:
			s = worker.Step{Subject: events.SubjectRoleAssigned, Handler: notify.New(gc, m, verify, notify.Options{
				Sender: cfg.Notify.Sender, AuthorityHost: cfg.Tenant.AuthorityHost,
			})}
		default:
			return nil, fmt.Errorf("unknown step %q (steps: invite, license, role, notify, all)", n)
		}
		s.Name = n
		s.Handler = telemetry.Step(so.TracerProvider, n, s.Subject)(s.Handler)
		steps = append(steps, s)
	}
	return steps, nil
}

// withTransport is hc with its transport wrapped.
func withTransport(hc *http.Client, wrap func(http.RoundTripper) http.RoundTripper) *http.Client {
	c := *hc
	c.Transport = wrap(hc.Transport)
	return &c
}
