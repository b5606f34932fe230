package graphsim

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// tokenLifetime is what Entra returns for app tokens (expires_in 3599).
const tokenLifetime = 3599 * time.Second

// claims is what the emulator's access tokens carry. The shape is the
// emulator's own business (clients treat access tokens as opaque), but it is
// a real HS256 JWT so that people can read one with any JWT tool.
type claims struct {
	Aud   string `json:"aud"`
	Iss   string `json:"iss"`
	Tid   string `json:"tid"`
	AppID string `json:"appid"`
	Iat   int64  `json:"iat"`
	Nbf   int64  `json:"nbf"`
	Exp   int64  `json:"exp"`
	Jti   string `json:"jti"`
	Ver   string `json:"ver"`
}

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

func (s *Sim) mint(cl claims) string {
	payload, _ := json.Marshal(cl)
	signed := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	return signed + "." + base64.RawURLEncoding.EncodeToString(s.sign(signed))
}

func (s *Sim) sign(signed string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(signed))
	return m.Sum(nil)
}

// tokenProblem is why a token was refused, worded as Graph words it.
type tokenProblem string

func (p tokenProblem) Error() string { return string(p) }

const (
	errTokenEmpty     tokenProblem = "Access token is empty."
	errTokenMalformed tokenProblem = "IDX14100: JWT is not well formed, there are no dots (.). The token needs to be in JWS or JWE Compact Serialization Format."
	errTokenInvalid   tokenProblem = "Access token validation failure."
	errTokenAudience  tokenProblem = "Access token validation failure. Invalid audience."
	errTokenExpired   tokenProblem = "Lifetime validation failed, the token is expired."
	errTokenTenant    tokenProblem = "Access token validation failure. Invalid issuer or tenant."
)

// verify checks signature, lifetime, tenant, app and audience.
func (s *Sim) verify(token, audience string, now time.Time) (claims, error) {
	var cl claims
	if token == "" {
		return cl, errTokenEmpty
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return cl, errTokenMalformed
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, s.sign(parts[0]+"."+parts[1])) {
		return cl, errTokenInvalid
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(payload, &cl) != nil {
		return cl, errTokenInvalid
	}
	switch {
	case now.Unix() >= cl.Exp:
		return cl, errTokenExpired
	case now.Add(5*time.Minute).Unix() < cl.Nbf:
		return cl, errTokenInvalid
	case cl.Tid != s.opts.TenantID || cl.AppID != s.opts.ClientID:
		return cl, errTokenTenant
	case !strings.EqualFold(cl.Aud, audience):
		return cl, errTokenAudience
	}
	return cl, nil
}

// authenticate requires a bearer token issued by this emulator for this
// API's audience: Graph is the host itself, an instance is its URL, the
// Power Platform admin API is https://service.powerapps.com/ (as at
// Microsoft, whatever host serves it). kiota silently drops the
// Authorization header for hosts outside its allow list, so answering 401
// here is what makes that client mistake visible.
func (c *call) authenticate() bool {
	auth := c.r.Header.Get("Authorization")
	token := ""
	if scheme, rest, ok := strings.Cut(auth, " "); ok && strings.EqualFold(scheme, "Bearer") {
		token = strings.TrimSpace(rest)
	} else if auth != "" {
		token = "-" // present but not a bearer token
	}
	audience := origin(c.r)
	switch {
	case c.dataverse:
		audience += "/instances/" + c.inst.name
	case c.bap:
		audience = PowerAppsAudience
	}
	cl, err := c.s.verify(token, audience, c.s.now())
	if err == nil {
		c.appID = cl.AppID
		return true
	}
	authority := c.base() + "/" + c.s.opts.TenantID + "/oauth2/authorize"
	if c.bap {
		c.bapUnauthorized(authority, err, cl.Aud)
		return false
	}
	if c.dataverse {
		c.w.Header().Set("WWW-Authenticate", fmt.Sprintf("Bearer authorization_uri=%s, resource_id=%s/", authority, audience))
		c.fail(http.StatusUnauthorized, "0x80072560", "The user is not authenticated: "+err.Error())
		return false
	}
	c.w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="", authorization_uri="%s", client_id="00000003-0000-0000-c000-000000000000"`, authority))
	c.fail(http.StatusUnauthorized, "InvalidAuthenticationToken", err.Error())
	return false
}

// knownTenant accepts the tenant id or its initial domain, as Entra does.
func (s *Sim) knownTenant(t string) bool {
	return strings.EqualFold(t, s.opts.TenantID) || strings.EqualFold(t, TenantDomain)
}

// handleOpenIDConfig is the tenant discovery document MSAL reads first.
// Endpoints and issuer use the host the client called: MSAL rejects an
// issuer whose host differs from its authority's.
func (s *Sim) handleOpenIDConfig(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !s.knownTenant(tenant) {
		s.aadError(w, r, http.StatusBadRequest, "invalid_tenant", 90002, tenantNotFound(tenant))
		return
	}
	base := origin(r) + "/" + s.opts.TenantID
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                base + "/v2.0",
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     origin(r) + "/oidc/userinfo",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "nbf", "tid", "ver"},
		"tenant_region_scope":                   "EU",
		"cloud_instance_name":                   "microsoftonline.com",
		"cloud_graph_host_name":                 "graph.windows.net",
		"msgraph_host":                          strings.TrimPrefix(origin(r), "https://"),
	})
}

// handleKeys serves an empty key set: tokens are HMAC-signed with a secret
// only the emulator holds, so there is no public key to publish.
func (s *Sim) handleKeys(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"keys": []any{}})
}

// handleToken is the client-credentials grant, checked in Entra's order:
// tenant, grant type, client, secret, scope.
func (s *Sim) handleToken(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !s.knownTenant(tenant) {
		s.aadError(w, r, http.StatusBadRequest, "invalid_request", 90002, tenantNotFound(tenant))
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		s.aadError(w, r, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'. The body must be application/x-www-form-urlencoded.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.aadError(w, r, http.StatusBadRequest, "invalid_request", 900144, "The request body could not be read as a form: "+err.Error())
		return
	}
	form := r.PostForm
	for _, p := range []string{"grant_type", "client_id"} {
		if form.Get(p) == "" {
			s.aadError(w, r, http.StatusBadRequest, "invalid_request", 900144, fmt.Sprintf("The request body must contain the following parameter: '%s'.", p))
			return
		}
	}
	if gt := form.Get("grant_type"); gt != "client_credentials" {
		s.aadError(w, r, http.StatusBadRequest, "unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'.", gt))
		return
	}
	clientID := form.Get("client_id")
	if clientID != s.opts.ClientID {
		s.aadError(w, r, http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf(
			"Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
			clientID, TenantDomain))
		return
	}
	secret := form.Get("client_secret")
	if secret == "" {
		s.aadError(w, r, http.StatusUnauthorized, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	}
	if subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.ClientSecret)) != 1 {
		s.aadError(w, r, http.StatusUnauthorized, "invalid_client", 7000215, fmt.Sprintf(
			"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", clientID))
		return
	}
	aud, code, msg := s.resourceOf(form.Get("scope"), r)
	if code != 0 {
		errName := "invalid_scope"
		if code == 500011 {
			errName = "invalid_resource"
		} else if code == 900144 {
			errName = "invalid_request"
		}
		s.aadError(w, r, http.StatusBadRequest, errName, code, msg)
		return
	}
	now := s.now()
	token := s.mint(claims{
		Aud: aud, Iss: origin(r) + "/" + s.opts.TenantID + "/", Tid: s.opts.TenantID, AppID: clientID,
		Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(tokenLifetime).Unix(), Jti: uuid.NewString(), Ver: "1.0",
	})
	s.issued.add(token)
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     int(tokenLifetime.Seconds()),
		"ext_expires_in": int(tokenLifetime.Seconds()),
		"access_token":   token,
	})
}

// resourceOf turns the scope parameter into the token audience. MSAL adds
// openid, offline_access and profile; what remains must be exactly one
// "<resource>/.default" naming Graph (the emulator's origin), one of its
// instances, or the Power Platform admin API (service.powerapps.com, a
// Microsoft host the emulator stands in for). It returns a non-zero AADSTS
// code when the scope is unusable.
func (s *Sim) resourceOf(scope string, r *http.Request) (aud string, code int, msg string) {
	if strings.TrimSpace(scope) == "" {
		return "", 900144, "The request body must contain the following parameter: 'scope'."
	}
	var resources []string
	for _, sc := range strings.Fields(scope) {
		switch strings.ToLower(sc) {
		case "openid", "offline_access", "profile":
		default:
			resources = append(resources, sc)
		}
	}
	invalid := func(sc string) (string, int, string) {
		return "", 1002012, fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", sc)
	}
	switch {
	case len(resources) == 0:
		return invalid(scope)
	case len(resources) > 1:
		return "", 70011, fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. The scope %s is not valid. A client credentials token can be requested for only one resource at a time.", strings.Join(resources, " "))
	case !strings.HasSuffix(resources[0], "/.default"):
		return invalid(resources[0])
	}
	resource := strings.TrimSuffix(resources[0], "/.default")
	if aud, ok := powerAppsResource(resource); ok {
		return aud, 0, ""
	}
	u, err := url.Parse(resource)
	notFound := func() (string, int, string) {
		return "", 500011, fmt.Sprintf("The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", resource, TenantDomain)
	}
	if err != nil || u.Scheme != "https" || !isSelf(u.Host, r.Host) || u.RawQuery != "" || u.Fragment != "" {
		return notFound()
	}
	host := strings.ToLower(u.Host)
	path := strings.TrimRight(u.Path, "/")
	if path == "" {
		return "https://" + host, 0, ""
	}
	if name, ok := strings.CutPrefix(path, "/instances/"); ok && s.instances[name] != nil {
		return "https://" + host + "/instances/" + name, 0, ""
	}
	return notFound()
}

// isSelf reports whether host names this emulator: the host the token
// request was sent to, or a loopback alias of it on the same port (the
// certificate covers 127.0.0.1, ::1 and localhost).
func isSelf(host, reqHost string) bool {
	if strings.EqualFold(host, reqHost) {
		return true
	}
	h, port, err := net.SplitHostPort(host)
	_, reqPort, err2 := net.SplitHostPort(reqHost)
	if err != nil || err2 != nil || port != reqPort {
		return false
	}
	switch strings.ToLower(h) {
	case "127.0.0.1", "::1", "localhost":
		return true
	}
	return false
}

func tenantNotFound(t string) string {
	return fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", t)
}

// aadError writes Entra's OAuth error body. MSAL surfaces error_description
// in AuthenticationFailedError, so the AADSTS code is in it, as from Entra.
func (s *Sim) aadError(w http.ResponseWriter, r *http.Request, status int, errName string, code int, msg string) {
	trace := uuid.NewString()
	corr := r.Header.Get("client-request-id")
	if corr == "" {
		corr = uuid.NewString()
	}
	ts := time.Now().UTC().Format("2006-01-02 15:04:05Z")
	writeJSON(w, status, map[string]any{
		"error":             errName,
		"error_description": fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", code, msg, trace, corr, ts),
		"error_codes":       []int{code},
		"timestamp":         ts,
		"trace_id":          trace,
		"correlation_id":    corr,
		"error_uri":         fmt.Sprintf("%s/error?code=%d", origin(r), code),
	})
}

// issuedTokens remembers the newest access tokens the emulator issued, so
// that tests can look for them where no token may appear (logs, dead
// letters, metrics). Bounded: a long-running emulator keeps only the newest.
type issuedTokens struct {
	mu     sync.Mutex
	tokens []string
}

const maxIssuedTokens = 1000

func (t *issuedTokens) add(tok string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.tokens) == maxIssuedTokens {
		t.tokens = t.tokens[1:]
	}
	t.tokens = append(t.tokens, tok)
}

// IssuedTokens returns the newest access tokens the token endpoint issued
// (up to 1,000), oldest first. Only tests need it; it is not served over
// HTTP, since a token is a credential.
func (s *Sim) IssuedTokens() []string {
	s.issued.mu.Lock()
	defer s.issued.mu.Unlock()
	return append([]string(nil), s.issued.tokens...)
}
