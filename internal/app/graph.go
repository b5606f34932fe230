package app

import (
	"fmt"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/graph"
	"github.com/guestflow/guestflow/internal/httpclient"
)

// appIdentity is the transport and the credential every Microsoft call of a
// process shares: one connection pool, one token cache.
func appIdentity(cfg config.Config, creds Credentials) (*http.Client, azcore.TokenCredential, error) {
	hc, err := httpclient.New(cfg.Tenant.CAFile, 60*time.Second)
	if err != nil {
		return nil, nil, err
	}
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
	hc, cred, err := appIdentity(cfg, creds)
	if err != nil {
		return nil, err
	}
	// Reads only, so no share of the tenant's write budget (throttle).
	return graph.New(cred, cfg.Tenant.GraphURL, hc, graph.Options{})
}
