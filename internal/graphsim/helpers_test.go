package graphsim

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// env is one emulator started on a random port plus an HTTPS client that
// trusts only its CA: the tests talk to it exactly as guestflow does.
type env struct {
	t  *testing.T
	s  *Sim
	hc *http.Client
}

func start(t *testing.T, opts Options) *env {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	hc := &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CertPool()}},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return &env{t: t, s: s, hc: hc}
}

// result is a decoded response.
type result struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// errCode is error.code of a Graph or Dataverse error body.
func (r result) errCode() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (r result) errMessage() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

func (r result) str(key string) string { s, _ := r.body[key].(string); return s }

func (r result) values() []map[string]any {
	list, _ := r.body["value"].([]any)
	out := []map[string]any{}
	for _, v := range list {
		out = append(out, v.(map[string]any))
	}
	return out
}

// do sends a request. body may be nil, []byte (sent as is) or a value
// marshalled to JSON; token "" sends no Authorization header.
func (e *env) do(method, path, token string, body any, headers ...string) result {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.s.URL()+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := result{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil && raw[0] != '[' {
			e.t.Fatalf("%s %s: %d body is not JSON: %q", method, path, resp.StatusCode, raw)
		}
	}
	return r
}

// tokenFor runs the client-credentials grant as MSAL sends it.
func (e *env) tokenFor(tenant, clientID, secret, scope string) result {
	e.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}, "scope": {scope}}
	req, _ := http.NewRequest("POST", e.s.URL()+"/"+tenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := result{status: resp.StatusCode, header: resp.Header, raw: raw}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		e.t.Fatalf("token body is not JSON: %q", raw)
	}
	return r
}

// token gets an access token for a resource ("" for Graph, or an instance
// name) with the default credentials.
func (e *env) token(instance string) string {
	e.t.Helper()
	scope := e.s.URL() + "/.default openid offline_access profile"
	if instance != "" {
		scope = e.s.URL() + "/instances/" + instance + "/.default openid offline_access profile"
	}
	r := e.tokenFor(DefaultTenantID, DefaultClientID, DefaultClientSecret, scope)
	if r.status != 200 || r.str("access_token") == "" {
		e.t.Fatalf("token for %q: %d %s", instance, r.status, r.raw)
	}
	return r.str("access_token")
}

// graph calls Graph v1.0 with a valid token.
func (e *env) graph(method, path string, body any) result {
	e.t.Helper()
	return e.do(method, "/v1.0"+path, e.token(""), body)
}

// dv calls an instance's Web API with a valid token for it.
func (e *env) dv(instance, method, path string, body any) result {
	e.t.Helper()
	return e.do(method, "/instances/"+instance+"/api/data/v9.2"+path, e.token(instance), body)
}

// inspect decodes a /_sim endpoint into v.
func (e *env) inspect(path string, v any) {
	e.t.Helper()
	r := e.do("GET", "/_sim"+path, "", nil)
	if r.status != 200 {
		e.t.Fatalf("GET /_sim%s: %d %s", path, r.status, r.raw)
	}
	if err := json.Unmarshal(r.raw, v); err != nil {
		e.t.Fatalf("GET /_sim%s: %v", path, err)
	}
}

// invite invites addr and returns the invitation body.
func (e *env) invite(addr string) result {
	e.t.Helper()
	r := e.graph("POST", "/invitations", map[string]any{
		"invitedUserEmailAddress": addr, "inviteRedirectUrl": e.s.URL() + "/instances/sales", "sendInvitationMessage": false,
	})
	if r.status != 201 {
		e.t.Fatalf("invite %s: %d %s", addr, r.status, r.raw)
	}
	return r
}

func invitedID(r result) string {
	return r.body["invitedUser"].(map[string]any)["id"].(string)
}

// onboard invites addr, sets its usage location and assigns sku: the Graph
// half of an onboarding. It returns the user id.
func (e *env) onboard(addr, sku string) string {
	e.t.Helper()
	id := invitedID(e.invite(addr))
	if r := e.graph("PATCH", "/users/"+id, map[string]any{"usageLocation": "PT", "givenName": "Ana", "surname": "Silva"}); r.status != 204 {
		e.t.Fatalf("patch: %d %s", r.status, r.raw)
	}
	if r := e.graph("POST", "/users/"+id+"/assignLicense", map[string]any{
		"addLicenses": []any{map[string]any{"skuId": sku, "disabledPlans": []string{}}}, "removeLicenses": []string{},
	}); r.status != 200 {
		e.t.Fatalf("assignLicense: %d %s", r.status, r.raw)
	}
	return id
}

func (e *env) findUser(id string) User {
	e.t.Helper()
	var users []User
	e.inspect("/users", &users)
	for _, u := range users {
		if u.ID == id {
			return u
		}
	}
	e.t.Fatalf("user %s not in /_sim/users", id)
	return User{}
}
