package graphsim

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func TestOpenIDConfiguration(t *testing.T) {
	e := start(t, Options{})
	r := e.do("GET", "/"+DefaultTenantID+"/v2.0/.well-known/openid-configuration", "", nil)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	base := e.s.URL() + "/" + DefaultTenantID
	for key, want := range map[string]string{
		"issuer":                 base + "/v2.0",
		"token_endpoint":         base + "/oauth2/v2.0/token",
		"authorization_endpoint": base + "/oauth2/v2.0/authorize",
		"jwks_uri":               base + "/discovery/v2.0/keys",
	} {
		if got := r.str(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if r := e.do("GET", "/00000000-0000-0000-0000-000000000000/v2.0/.well-known/openid-configuration", "", nil); r.status != 400 || r.str("error") != "invalid_tenant" {
		t.Errorf("unknown tenant: %d %s", r.status, r.raw)
	}
}

func TestTokenGrant(t *testing.T) {
	e := start(t, Options{})
	graph := e.s.URL() + "/.default openid offline_access profile"
	tests := []struct {
		name                   string
		tenant, client, secret string
		scope                  string
		status                 int
		errName, aadsts        string
		aud                    string
	}{
		{"graph", DefaultTenantID, DefaultClientID, DefaultClientSecret, graph, 200, "", "", e.s.URL()},
		{"tenant domain", TenantDomain, DefaultClientID, DefaultClientSecret, graph, 200, "", "", e.s.URL()},
		{"dataverse instance", DefaultTenantID, DefaultClientID, DefaultClientSecret, e.s.URL() + "/instances/sales/.default", 200, "", "", e.s.URL() + "/instances/sales"},
		{"double slash", DefaultTenantID, DefaultClientID, DefaultClientSecret, e.s.URL() + "//.default", 200, "", "", e.s.URL()},
		{"wrong secret", DefaultTenantID, DefaultClientID, "nope", graph, 401, "invalid_client", "AADSTS7000215", ""},
		{"no secret", DefaultTenantID, DefaultClientID, "", graph, 401, "invalid_client", "AADSTS7000218", ""},
		{"wrong client", DefaultTenantID, "someone-else", DefaultClientSecret, graph, 400, "unauthorized_client", "AADSTS700016", ""},
		{"wrong tenant", "11111111-1111-1111-1111-111111111111", DefaultClientID, DefaultClientSecret, graph, 400, "invalid_request", "AADSTS90002", ""},
		{"no .default", DefaultTenantID, DefaultClientID, DefaultClientSecret, e.s.URL() + "/User.Read", 400, "invalid_scope", "AADSTS1002012", ""},
		{"two resources", DefaultTenantID, DefaultClientID, DefaultClientSecret, graph + " " + e.s.URL() + "/instances/sales/.default", 400, "invalid_scope", "AADSTS70011", ""},
		{"only openid", DefaultTenantID, DefaultClientID, DefaultClientSecret, "openid profile", 400, "invalid_scope", "AADSTS1002012", ""},
		{"real graph host", DefaultTenantID, DefaultClientID, DefaultClientSecret, "https://graph.microsoft.com/.default", 400, "invalid_resource", "AADSTS500011", ""},
		{"unknown instance", DefaultTenantID, DefaultClientID, DefaultClientSecret, e.s.URL() + "/instances/nope/.default", 400, "invalid_resource", "AADSTS500011", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.tokenFor(tt.tenant, tt.client, tt.secret, tt.scope)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.raw)
			}
			if tt.status != 200 {
				if r.str("error") != tt.errName || !strings.HasPrefix(r.str("error_description"), tt.aadsts+":") {
					t.Errorf("error %q %q, want %s %s", r.str("error"), r.str("error_description"), tt.errName, tt.aadsts)
				}
				for _, k := range []string{"timestamp", "trace_id", "correlation_id"} {
					if r.str(k) == "" {
						t.Errorf("AAD error lacks %s", k)
					}
				}
				if codes, _ := r.body["error_codes"].([]any); len(codes) != 1 {
					t.Errorf("error_codes = %v", r.body["error_codes"])
				}
				return
			}
			if r.str("token_type") != "Bearer" || r.body["expires_in"] != float64(3599) || r.body["ext_expires_in"] == nil {
				t.Errorf("token response %s", r.raw)
			}
			parts := strings.Split(r.str("access_token"), ".")
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			if !strings.Contains(string(payload), `"aud":"`+tt.aud+`"`) || !strings.Contains(string(payload), `"appid":"`+DefaultClientID+`"`) {
				t.Errorf("claims %s, want aud %s", payload, tt.aud)
			}
		})
	}
	if n := e.s.Stats().Requests; n != 0 {
		t.Errorf("token calls counted as %d API requests", n)
	}
}

func TestAPIRequiresTokenForItsAudience(t *testing.T) {
	e := start(t, Options{})
	graphTok, salesTok := e.token(""), e.token("sales")
	tampered := graphTok[:len(graphTok)-4] + "AAAA"
	tests := []struct {
		name, path, token string
		dataverse         bool
		msg               string
	}{
		{"graph without token", "/v1.0/subscribedSkus", "", false, "Access token is empty."},
		{"graph with garbage", "/v1.0/subscribedSkus", "garbage", false, "IDX14100"},
		{"graph with tampered token", "/v1.0/subscribedSkus", tampered, false, "validation failure"},
		{"graph with dataverse token", "/v1.0/subscribedSkus", salesTok, false, "Invalid audience"},
		{"dataverse without token", "/instances/sales/api/data/v9.2/WhoAmI", "", true, "empty"},
		{"dataverse with graph token", "/instances/sales/api/data/v9.2/WhoAmI", graphTok, true, "Invalid audience"},
		{"other instance's token", "/instances/service/api/data/v9.2/WhoAmI", salesTok, true, "Invalid audience"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("GET", tt.path, tt.token, nil, "client-request-id", "abc-123")
			if r.status != 401 {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			if !strings.Contains(r.errMessage(), tt.msg) {
				t.Errorf("message %q lacks %q", r.errMessage(), tt.msg)
			}
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
			}
			if tt.dataverse {
				if r.errCode() != "0x80072560" || r.header.Get("x-ms-service-request-id") == "" {
					t.Errorf("dataverse 401: %s %v", r.raw, r.header)
				}
				return
			}
			inner, _ := r.body["error"].(map[string]any)["innerError"].(map[string]any)
			if r.errCode() != "InvalidAuthenticationToken" || inner["request-id"] != r.header.Get("request-id") || inner["client-request-id"] != "abc-123" || inner["date"] == "" {
				t.Errorf("graph 401 body %s", r.raw)
			}
			if r.header.Get("client-request-id") != "abc-123" {
				t.Errorf("client-request-id not echoed: %v", r.header)
			}
		})
	}

	if r := e.do("GET", "/v1.0/subscribedSkus", graphTok, nil); r.status != 200 {
		t.Fatalf("valid token refused: %d %s", r.status, r.raw)
	}
	e.s.advance(time.Hour)
	if r := e.do("GET", "/v1.0/subscribedSkus", graphTok, nil); r.status != 401 || !strings.Contains(r.errMessage(), "expired") {
		t.Errorf("expired token: %d %s", r.status, r.raw)
	}
}
