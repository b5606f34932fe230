package app

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"go.opentelemetry.io/otel/trace"

	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/graph"
	"github.com/guestflow/guestflow/internal/httpclient"
	"github.com/guestflow/guestflow/internal/telemetry"
)

// appIdentity is the transport and the credential every Microsoft call of a
// process shares: one connection pool, one token cache. Every request,
// tokens' included, is a client span of tp (nil: the global provider),
// beneath the step's span; the tenant's shared budget wraps this
// transport, so a wait for budget is not part of a call's span.
func appIdentity(cfg config.Config, creds Credentials, tp trace.TracerProvider) (*http.Client, azcore.TokenCredential, error) {
	hc, err := httpclient.New(cfg.Tenant.CAFile, 60*time.Second)
	if err != nil {
		return nil, nil, err
	}
	hc.Transport = telemetry.Transport(tp, hc.Transport)
	cred, err := graph.NewCredential(graph.CredentialOptions{
		TenantID: cfg.Tenant.ID, ClientID: creds.ClientID, ClientSecret: creds.ClientSecret,
		AuthorityHost: cfg.Tenant.AuthorityHost, HTTPClient: hc,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("credential: %w", err)
	}
	return hc, cred, nil
}

// NewGraph returns a Graph client for cfg's tenant, built as BuildSteps
// builds the steps' client. `guestflow status` reads a guest's invitation
// state with it.
func NewGraph(cfg config.Config, creds Credentials) (*graph.Client, error) {
	hc, cred, err := appIdentity(cfg, creds, nil)
	if err != nil {
		return nil, err
	}
	// Reads only, so no share of the tenant's write budget (throttle).
	return graph.New(cred, cfg.Tenant.GraphURL, hc, graph.Options{})
}

// graphScope is the scope of Graph tokens, as graph.New asks for them.
func graphScope(graphURL string) string {
	return strings.TrimSuffix(graphURL, "/") + "/.default"
}
