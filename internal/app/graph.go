package app

import (
	"fmt"
	"time"

	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/graph"
	"github.com/guestflow/guestflow/internal/httpclient"
)

// NewGraph returns a Graph client for cfg's tenant, on the same credential
// and transport the steps get from BuildSteps. `guestflow status` reads a
// guest's invitation state with it.
func NewGraph(cfg config.Config, creds Credentials) (*graph.Client, error) {
	hc, err := httpclient.New(cfg.Tenant.CAFile, 60*time.Second)
	if err != nil {
		return nil, err
	}
	cred, err := graph.NewCredential(graph.CredentialOptions{
		TenantID: cfg.Tenant.ID, ClientID: creds.ClientID, ClientSecret: creds.ClientSecret,
		AuthorityHost: cfg.Tenant.AuthorityHost, HTTPClient: hc,
	})
	if err != nil {
		return nil, fmt.Errorf("credential: %w", err)
	}
	// Reads only, so no share of the tenant's write budget (throttle).
	return graph.New(cred, cfg.Tenant.GraphURL, hc, graph.Options{})
}
