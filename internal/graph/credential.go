// Package graph is guestflow's only door to Microsoft Entra ID: it builds the
// azidentity credential and talks to Microsoft Graph through msgraph-sdk-go.
// It imports only the SDK's sub-packages, never the root msgraphsdk package,
// whose build costs minutes and gigabytes.
package graph

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/wire"
)

// PublicAuthority is Entra ID's public-cloud authority host.
const PublicAuthority = "https://login.microsoftonline.com/"

// CredentialOptions say how to obtain tokens.
type CredentialOptions struct {
	TenantID string
	// ClientID and ClientSecret select a client-secret credential. Without
	// a secret, azidentity's default chain is used (workload identity,
	// managed identity, environment, Azure CLI…).
	ClientID     string
	ClientSecret string
	// AuthorityHost is the token issuer, e.g. the emulator's URL.
	AuthorityHost string
	// HTTPClient carries the trusted CAs; nil means http.DefaultClient.
	HTTPClient *http.Client
}

// NewCredential returns a token credential for app-only access. azcore's
// own retries are off: the worker runtime is the one retry layer.
func NewCredential(o CredentialOptions) (azcore.TokenCredential, error) {
	if o.TenantID == "" {
		return nil, errors.New("graph: a tenant id is required")
	}
	authority := o.AuthorityHost
	if authority == "" {
		authority = PublicAuthority
	}
	if !strings.HasSuffix(authority, "/") {
		authority += "/"
	}
	co := azcore.ClientOptions{
		Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: authority},
		Retry: policy.RetryOptions{MaxRetries: -1},
	}
	if o.HTTPClient != nil {
		co.Transport = o.HTTPClient
	}
	// Instance discovery asks a hard-coded public endpoint to validate the
	// authority; that is right for the public cloud and impossible for the
	// emulator or a sovereign cloud reached by its own host.
	noDiscovery := authority != PublicAuthority
	var cred azcore.TokenCredential
	var err error
	if o.ClientSecret != "" {
		cred, err = azidentity.NewClientSecretCredential(o.TenantID, o.ClientID, o.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: noDiscovery})
	} else {
		cred, err = azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
			ClientOptions: co, DisableInstanceDiscovery: noDiscovery, TenantID: o.TenantID,
		})
	}
	if err != nil {
		return nil, err
	}
	return classified{cred}, nil
}

// classified reports token failures as *failure.Remote with Entra's status,
// OAuth error name and description, so that a wrong secret (401) is
// dead-lettered at once as auth_failed while an unreachable authority is
// retried.
type classified struct{ azcore.TokenCredential }

func (c classified) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.TokenCredential.GetToken(ctx, o)
	if err == nil {
		return tok, nil
	}
	r := &failure.Remote{Service: "entra", Op: "get token for " + strings.Join(o.Scopes, " "), Message: err.Error()}
	var afe *azidentity.AuthenticationFailedError
	if errors.As(err, &afe) && afe.RawResponse != nil {
		resp := afe.RawResponse
		r.Status = resp.StatusCode
		r.RequestID = resp.Header.Get("x-ms-request-id")
		r.RetryAfter = wire.RetryAfter(resp.Header.Get("Retry-After"), time.Now())
		r.Message = strings.SplitN(strings.TrimSpace(afe.Error()), "\n", 2)[0]
		// azcore keeps the body it read, so it can be read again here.
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
			TraceID     string `json:"trace_id"`
		}
		if raw, err := runtime.Payload(resp); err == nil && json.Unmarshal(raw, &body) == nil && body.Error != "" {
			r.Code = body.Error
			r.Message, _, _ = strings.Cut(body.Description, " Trace ID:")
			if r.RequestID == "" {
				r.RequestID = body.TraceID
			}
		}
		r.Kind = tokenKind(r)
	}
	return tok, r
}

// tokenKind is what Entra's refusal of a token means. A scope Entra does
// not know (invalid_resource, AADSTS500011, or invalid_scope) is a
// Dataverse instance URL that names no environment of the tenant: Graph's
// and the admin API's scopes are fixed. Every other 4xx but 429 is the
// app's identity (invalid_client, unauthorized_client, invalid_tenant),
// which no retry changes.
func tokenKind(r *failure.Remote) failure.Kind {
	switch {
	case r.Code == "invalid_resource" || r.Code == "invalid_scope":
		return failure.KindNotFoundInstance
	case r.Status >= 400 && r.Status < 500 && r.Status != 429:
		return failure.KindCredentials
	}
	return failure.KindOther
}
