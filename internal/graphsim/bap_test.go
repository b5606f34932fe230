package graphsim

import (
	"encoding/base64"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"
)

const addUserRoute = "POST /providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/{id}/addUser"

// powerAppsToken gets a token for the Power Platform admin API with the
// scope Microsoft documents (double slash), as MSAL sends it.
func (e *env) powerAppsToken() string {
	e.t.Helper()
	r := e.tokenFor(DefaultTenantID, DefaultClientID, DefaultClientSecret, "https://service.powerapps.com//.default openid offline_access profile")
	if r.status != 200 || r.str("access_token") == "" {
		e.t.Fatalf("powerapps token: %d %s", r.status, r.raw)
	}
	return r.str("access_token")
}

func addUserPath(envID string) string {
	return "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/" + envID + "/addUser?api-version=2020-10-01"
}

// addUser forces the sync of objectID into an environment.
func (e *env) addUser(envID, token, objectID string) result {
	e.t.Helper()
	return e.do("POST", addUserPath(envID), token, map[string]any{"ObjectId": objectID})
}

func tokenAudience(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var cl claims
	if err := json.Unmarshal(payload, &cl); err != nil {
		t.Fatal(err)
	}
	return cl.Aud
}

// checkBAPError checks the admin API's error shape: exactly code and
// message, no Graph innerError, plus its request id header.
func checkBAPError(t *testing.T, r result, status int, code string) {
	t.Helper()
	if r.status != status || r.errCode() != code {
		t.Fatalf("got %d %s, want %d %s", r.status, r.raw, status, code)
	}
	e, _ := r.body["error"].(map[string]any)
	var keys []string
	for k := range e {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if strings.Join(keys, ",") != "code,message" || r.errMessage() == "" {
		t.Errorf("error body %s, want {error:{code,message}}", r.raw)
	}
	if r.header.Get("x-ms-service-request-id") == "" || r.header.Get("x-ms-correlation-request-id") == "" {
		t.Errorf("request ids missing: %v", r.header)
	}
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("Content-Type %q", r.header.Get("Content-Type"))
	}
}

func TestPowerAppsTokenAudience(t *testing.T) {
	e := start(t, Options{})
	if aud := tokenAudience(t, e.powerAppsToken()); aud != PowerAppsAudience {
		t.Errorf("double-slash scope: aud %q, want %q", aud, PowerAppsAudience)
	}
	// The single-slash scope names the resource without its trailing slash;
	// the admin API refuses that audience and says how to ask.
	r := e.tokenFor(DefaultTenantID, DefaultClientID, DefaultClientSecret, "https://service.powerapps.com/.default")
	if r.status != 200 {
		t.Fatalf("single-slash scope: %d %s", r.status, r.raw)
	}
	if aud := tokenAudience(t, r.str("access_token")); aud != "https://service.powerapps.com" {
		t.Errorf("single-slash scope: aud %q", aud)
	}
	res := e.addUser(ServiceEnvironmentID, r.str("access_token"), MeganUserID)
	checkBAPError(t, res, 401, "InvalidAuthenticationTokenAudience")
	if !strings.Contains(res.errMessage(), "//.default") {
		t.Errorf("audience message lacks the hint: %s", res.raw)
	}
	// Other audiences are unchanged.
	if aud := tokenAudience(t, e.token("")); aud != e.s.URL() {
		t.Errorf("graph aud %q", aud)
	}
	if aud := tokenAudience(t, e.token("sales")); aud != e.s.URL()+"/instances/sales" {
		t.Errorf("dataverse aud %q", aud)
	}
	// Other Microsoft hosts are still unknown resources.
	if r := e.tokenFor(DefaultTenantID, DefaultClientID, DefaultClientSecret, "https://api.bap.microsoft.com/.default"); r.status != 400 || r.str("error") != "invalid_resource" {
		t.Errorf("api.bap.microsoft.com scope: %d %s", r.status, r.raw)
	}
}

func TestAddUserRequiresPowerAppsToken(t *testing.T) {
	e := start(t, Options{SyncDelay: time.Hour})
	id := e.onboard("ana@fabrikam.com", SkuCustomerService)
	pa := e.powerAppsToken()
	graphTok, salesTok := e.token(""), e.token("sales")
	tests := []struct {
		name, token, code string
	}{
		{"no token", "", "AuthenticationFailed"},
		{"garbage", "garbage", "InvalidAuthenticationToken"},
		{"tampered", pa[:len(pa)-4] + "AAAA", "InvalidAuthenticationToken"},
		{"graph token", graphTok, "InvalidAuthenticationTokenAudience"},
		{"dataverse token", salesTok, "InvalidAuthenticationTokenAudience"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.addUser(ServiceEnvironmentID, tt.token, id)
			checkBAPError(t, r, 401, tt.code)
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	if su, _ := e.s.SystemUsers("service"); len(su) != 0 {
		t.Fatalf("refused calls created systemusers: %v", su)
	}

	// Expired tokens are refused by every API, on the emulator's clock.
	e.s.advance(time.Hour)
	checkBAPError(t, e.addUser(ServiceEnvironmentID, pa, id), 401, "ExpiredAuthenticationToken")
	if r := e.do("GET", "/instances/sales/api/data/v9.2/WhoAmI", salesTok, nil); r.status != 401 || r.errCode() != "0x80072560" || !strings.Contains(r.errMessage(), "expired") {
		t.Errorf("expired dataverse token: %d %s", r.status, r.raw)
	}
	if r := e.do("GET", "/v1.0/subscribedSkus", graphTok, nil); r.status != 401 || !strings.Contains(r.errMessage(), "expired") {
		t.Errorf("expired graph token: %d %s", r.status, r.raw)
	}
	// A fresh token works again.
	if r := e.addUser(ServiceEnvironmentID, e.powerAppsToken(), id); r.status != 200 {
		t.Errorf("fresh token: %d %s", r.status, r.raw)
	}
}

func TestAddUserRequestChecks(t *testing.T) {
	e := start(t, Options{})
	pa := e.powerAppsToken()
	base := "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/" + ServiceEnvironmentID + "/addUser"
	body := map[string]any{"ObjectId": MeganUserID}
	tests := []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"missing api-version", "POST", base, body, 400, "MissingApiVersionParameter"},
		{"empty api-version", "POST", base + "?api-version=", body, 400, "MissingApiVersionParameter"},
		{"api-version not a date", "POST", base + "?api-version=v9.2", body, 400, "InvalidApiVersionParameter"},
		{"api-version impossible date", "POST", base + "?api-version=2024-02-30", body, 400, "InvalidApiVersionParameter"},
		{"unknown environment", "POST", addUserPath("00000000-0000-4000-8000-000000000000"), body, 404, "EnvironmentNotFound"},
		{"environment by name", "POST", addUserPath("service"), body, 404, "EnvironmentNotFound"},
		{"unknown user", "POST", addUserPath(ServiceEnvironmentID), map[string]any{"ObjectId": "00000000-0000-4000-8000-000000000009"}, 404, "UserNotFound"},
		{"no ObjectId", "POST", addUserPath(ServiceEnvironmentID), map[string]any{}, 400, "InvalidRequestContent"},
		{"not a GUID", "POST", addUserPath(ServiceEnvironmentID), map[string]any{"ObjectId": "ana@fabrikam.com"}, 400, "InvalidRequestContent"},
		{"unknown property", "POST", addUserPath(ServiceEnvironmentID), map[string]any{"userId": MeganUserID}, 400, "InvalidRequestContent"},
		{"empty body", "POST", addUserPath(ServiceEnvironmentID), []byte(""), 400, "InvalidRequestContent"},
		{"wrong method", "GET", addUserPath(ServiceEnvironmentID), nil, 405, "MethodNotAllowed"},
		{"unknown admin route", "POST", "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/" + ServiceEnvironmentID + "/removeUser?api-version=2020-10-01", body, 404, "NotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBAPError(t, e.do(tt.method, tt.path, pa, tt.body), tt.status, tt.code)
		})
	}
	// Any date-shaped api-version is accepted; Megan holds no license.
	for _, v := range []string{"2019-05-01", "2021-04-01", "2023-06-01", "2024-10-01-preview"} {
		checkBAPError(t, e.do("POST", base+"?api-version="+v, pa, body), 403, "userNotLicensed")
	}
	st := e.s.Stats()
	if st.Calls["POST /providers/Microsoft.BusinessAppPlatform/*"]["404"] != 1 || st.Calls["GET "+strings.TrimPrefix(addUserRoute, "POST ")]["405"] != 1 {
		t.Errorf("calls %v", st.Calls)
	}
}

func TestAddUserForcesSync(t *testing.T) {
	e := start(t, Options{SyncDelay: time.Hour})
	pa := e.powerAppsToken()

	// Invited but not licensed: refused, retryable-looking, no row.
	guest := invitedID(e.invite("bob@contoso.example"))
	r := e.addUser(ServiceEnvironmentID, pa, guest)
	checkBAPError(t, r, 403, "userNotLicensed")
	if !strings.Contains(r.errMessage(), "not licensed") {
		t.Errorf("message %q", r.errMessage())
	}

	// Licensed for sales but not in its security group.
	id := e.onboard("ana@fabrikam.com", SkuSales)
	r = e.addUser(SalesEnvironmentID, pa, id)
	checkBAPError(t, r, 403, "userNotInSecurityGroup")
	if !strings.Contains(r.errMessage(), SalesGroupID) {
		t.Errorf("message %q lacks the group", r.errMessage())
	}
	if su, _ := e.s.SystemUsers("sales"); len(su) != 0 {
		t.Fatalf("ineligible user synced: %v", su)
	}

	// Eligible: the row exists at once, long before SyncDelay.
	if r := e.graph("POST", "/groups/"+SalesGroupID+"/members/$ref", map[string]any{"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/" + id}); r.status != 204 {
		t.Fatalf("add member: %d %s", r.status, r.raw)
	}
	r = e.addUser(SalesEnvironmentID, pa, id)
	if r.status != 200 || r.body["systemUserId"] != derivedID("systemuser", "sales", id) || r.body["alreadyExisted"] != false ||
		r.body["environmentId"] != SalesEnvironmentID || r.body["objectId"] != id || r.header.Get("x-ms-service-request-id") == "" {
		t.Fatalf("addUser: %d %s", r.status, r.raw)
	}
	var rows []SystemUser
	e.inspect("/instances/sales/systemusers", &rows)
	if len(rows) != 1 || rows[0].SystemUserID != derivedID("systemuser", "sales", id) || rows[0].AzureActiveDirectoryObjectID != id ||
		rows[0].InternalEmailAddress != "ana@fabrikam.com" || len(rows[0].Roles) != 0 {
		t.Fatalf("systemusers %+v", rows)
	}
	// Dataverse serves it too, in the root business unit.
	if got := e.systemUserOf("sales", id); len(got) != 1 || got[0]["_businessunitid_value"] != e.s.instances["sales"].rootBU.id {
		t.Errorf("dataverse systemusers %v", got)
	}

	// Idempotent, with the property name in another case.
	r = e.do("POST", addUserPath(strings.ToUpper(SalesEnvironmentID)), pa, map[string]any{"objectId": strings.ToUpper(id)})
	if r.status != 200 || r.body["alreadyExisted"] != true || r.body["systemUserId"] != derivedID("systemuser", "sales", id) {
		t.Errorf("second addUser: %d %s", r.status, r.raw)
	}
	// The background sync, once due, does not add a second row.
	e.s.advance(2 * time.Hour)
	if su, _ := e.s.SystemUsers("sales"); len(su) != 1 {
		t.Errorf("rows after the sync delay: %v", su)
	}
	pa = e.powerAppsToken() // the old one expired with the clock

	// Legacy environments copy the guest's #EXT# UPN into the email, as
	// the background sync does.
	old := e.onboard("carl@northwind.example", SkuPlan1)
	if r := e.addUser(LegacyEnvironmentID, pa, old); r.status != 200 {
		t.Fatalf("legacy addUser: %d %s", r.status, r.raw)
	}
	rows = nil
	e.inspect("/instances/legacy/systemusers", &rows)
	upn := e.findUser(old).UserPrincipalName
	var found bool
	for _, row := range rows {
		if row.AzureActiveDirectoryObjectID == old {
			found = true
			if row.InternalEmailAddress != upn || !strings.Contains(upn, "#EXT#") || row.SystemUserID != derivedID("systemuser", "legacy", old) {
				t.Errorf("legacy row %+v, want email %s", row, upn)
			}
		}
	}
	if !found {
		t.Errorf("legacy rows %+v lack %s", rows, old)
	}

	// Path literals are case-insensitive and count under one route key;
	// the call is an API request, not a Graph write.
	before := e.s.Stats()
	lower := "/providers/microsoft.businessappplatform/scopes/admin/environments/" + ServiceEnvironmentID + "/adduser?api-version=2020-10-01"
	if r := e.do("POST", lower, pa, map[string]any{"ObjectId": old}); r.status != 200 || r.body["alreadyExisted"] != false {
		t.Errorf("lower-case path: %d %s", r.status, r.raw)
	}
	var st Stats
	e.inspect("/stats", &st)
	calls := st.Calls[addUserRoute]
	if calls["200"] != 4 || calls["403"] != 2 || st.Requests != before.Requests+1 || st.Writes != before.Writes {
		t.Errorf("stats calls[%q] = %v, requests %d→%d, writes %d→%d", addUserRoute, calls, before.Requests, st.Requests, before.Writes, st.Writes)
	}
}

func TestAddUserFaultsAndReplicationLag(t *testing.T) {
	e := start(t, Options{FaultRate: 1})
	pa := e.powerAppsToken()
	for i := 0; i < 8; i++ {
		r := e.addUser(ServiceEnvironmentID, pa, MeganUserID)
		switch r.status {
		case 429, 500, 503, 504:
		default:
			t.Fatalf("fault rate 1: %d %s", r.status, r.raw)
		}
		checkBAPError(t, r, r.status, map[int]string{429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable", 504: "GatewayTimeout"}[r.status])
	}
	if st := e.s.Stats(); st.Faults != 8 || st.Requests != 8 {
		t.Errorf("stats %+v", st)
	}

	// A user created moments ago is not visible yet, as from Graph.
	e = start(t, Options{ReplicationLag: time.Minute, SyncDelay: time.Hour})
	pa = e.powerAppsToken()
	id := invitedID(e.invite("ana@fabrikam.com"))
	checkBAPError(t, e.addUser(ServiceEnvironmentID, pa, id), 404, "UserNotFound")
	e.s.advance(time.Minute)
	checkBAPError(t, e.addUser(ServiceEnvironmentID, pa, id), 403, "userNotLicensed")
}

func TestEnvironmentIDs(t *testing.T) {
	e := start(t, Options{})
	want := map[string]string{"sales": SalesEnvironmentID, "service": ServiceEnvironmentID, "legacy": LegacyEnvironmentID}
	for name, id := range want {
		if got := e.s.EnvironmentID(name); got != id || !isGUID(got) {
			t.Errorf("EnvironmentID(%s) = %q, want %q", name, got, id)
		}
		if ci := e.s.Config().Instances[name]; ci.EnvironmentID != "" {
			t.Errorf("Config() sets environmentId %q for %s; it must stay empty by default", ci.EnvironmentID, name)
		}
	}
	if e.s.EnvironmentID("nope") != "" {
		t.Error("unknown instance has an environment id")
	}
}
