package graphsim

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/guestflow/guestflow/internal/config"
)

// TestInspectionFields checks the contract's field names literally, by
// decoding into maps rather than the Go types that produce them.
func TestInspectionFields(t *testing.T) {
	e := start(t, Options{SyncDelay: -1})
	id := e.onboard("ana@fabrikam.com", SkuCustomerService)
	e.graph("POST", "/users/"+SenderAddress+"/sendMail", map[string]any{"message": map[string]any{
		"subject": "hi", "body": map[string]any{"contentType": "text", "content": "x"},
		"toRecipients": []any{map[string]any{"emailAddress": map[string]any{"address": "ana@fabrikam.com"}}}}})
	e.systemUserOf("service", id)

	fields := func(path string) []map[string]any {
		var v []map[string]any
		e.inspect(path, &v)
		if len(v) == 0 {
			t.Fatalf("%s is empty", path)
		}
		return v
	}
	keys := func(m map[string]any) string {
		var k []string
		for key := range m {
			k = append(k, key)
		}
		sort.Strings(k)
		return strings.Join(k, ",")
	}
	tests := []struct {
		path, keys string
	}{
		{"/users", "assignedLicenses,displayName,externalUserState,givenName,groups,id,invitationMessagesSent,mail,surname,usageLocation,userPrincipalName,userType"},
		{"/instances", "environmentId,legacyEmailUpdate,license,name,roles,securityGroupId,url"},
		{"/mail", "body,contentType,from,sentAt,subject,to"},
		{"/instances/service/systemusers", "azureactivedirectoryobjectid,internalemailaddress,roles,systemuserid"},
		{"/skus", "consumed,enabled,skuId,skuPartNumber"},
	}
	for _, tt := range tests {
		if got := keys(fields(tt.path)[0]); got != tt.keys {
			t.Errorf("%s fields %s, want %s", tt.path, got, tt.keys)
		}
	}

	instances := fields("/instances")
	want := map[string]string{"legacy": "", "sales": SalesGroupID, "service": ""}
	for _, in := range instances {
		name := in["name"].(string)
		group, _ := in["securityGroupId"].(string)
		if group != want[name] || in["url"] != e.s.URL()+"/instances/"+name || in["environmentId"] != e.s.EnvironmentID(name) || in["environmentId"] == "" {
			t.Errorf("instance %v", in)
		}
	}
	ana := e.findUser(id)
	if strings.Join(ana.AssignedLicenses, ",") != "DYN365_ENTERPRISE_CUSTOMER_SERVICE" || ana.UsageLocation != "PT" {
		t.Errorf("user %+v", ana)
	}

	var st Stats
	e.inspect("/stats", &st)
	for key, status := range map[string]string{
		"POST /v1.0/invitations":                              "201",
		"PATCH /v1.0/users/{id}":                              "204",
		"POST /v1.0/users/{id}/assignLicense":                 "200",
		"POST /v1.0/users/{id}/sendMail":                      "202",
		"GET /instances/{instance}/api/data/v9.2/systemusers": "200",
	} {
		if st.Calls[key][status] != 1 {
			t.Errorf("calls[%q] = %v, want %s: 1", key, st.Calls[key], status)
		}
	}
	// 4 Graph and 1 Dataverse call; token and /_sim calls do not count.
	if st.Requests != 5 || st.ByStatus["201"] != 1 || st.Writes != 3 || st.Invitations != 1 {
		t.Errorf("stats %+v", st)
	}
	raw := e.do("GET", "/_sim/stats", "", nil).raw
	for _, k := range []string{`"requests"`, `"byStatus"`, `"writes"`, `"invitations"`, `"throttled"`, `"faults"`, `"calls"`} {
		if !strings.Contains(string(raw), k) {
			t.Errorf("stats lacks %s: %s", k, raw)
		}
	}
}

func TestInspectionControls(t *testing.T) {
	e := start(t, Options{})
	r := e.do("POST", "/_sim/skus/DYN365_ENTERPRISE_SALES", "", map[string]any{"enabled": 0})
	if r.status != 200 || r.body["enabled"] != float64(0) {
		t.Fatalf("set seats: %d %s", r.status, r.raw)
	}
	if r := e.do("POST", "/_sim/skus/NOPE", "", map[string]any{"enabled": 1}); r.status != 404 {
		t.Errorf("unknown SKU: %d", r.status)
	}
	if r := e.do("POST", "/_sim/skus/DYN365_ENTERPRISE_SALES", "", map[string]any{"seats": 1}); r.status != 400 {
		t.Errorf("bad body: %d", r.status)
	}
	e.invite("ana@fabrikam.com")
	if r := e.do("POST", "/_sim/reset", "", nil); r.status != 204 {
		t.Fatalf("reset: %d", r.status)
	}
	if n := len(e.s.Users()); n != 2 || e.s.Stats().Requests != 0 || e.s.SKUs()[1].Enabled != DefaultSeats {
		t.Errorf("after reset: %d users, %+v, %+v", n, e.s.Stats(), e.s.SKUs())
	}
	if r := e.do("GET", "/_sim/redeem/nope", "", nil); r.status != 404 {
		t.Errorf("unknown redemption: %d", r.status)
	}
}

func TestConfigMatchesSeededTenant(t *testing.T) {
	e := start(t, Options{})
	c := e.s.Config()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, e.s.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	c.Tenant.CAFile = caFile
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Config() does not validate: %v", err)
	}
	raw, _ := json.Marshal(c.Instances)
	if c.Tenant.ID != DefaultTenantID || c.Tenant.GraphURL != e.s.URL() || c.Tenant.AuthorityHost != e.s.URL()+"/" ||
		c.Tenant.PowerPlatformURL != e.s.URL() || c.Notify.Sender != SenderAddress {
		t.Errorf("tenant %+v", c.Tenant)
	}
	// Every seeded role may be asked for but System Administrator; the
	// other allow-lists are the defaults.
	host := strings.TrimPrefix(e.s.URL(), "https://")
	allow := func(in config.Instance, license string, roles ...string) config.Instance {
		in.License, in.Roles = license, roles[:1]
		in.AllowedRoles, in.AllowedLicenses = roles, []string{license}
		in.AllowedRedirectHosts = []string{host, "myapps.microsoft.com", "myapplications.microsoft.com"}
		return in
	}
	want := map[string]config.Instance{
		"sales":   allow(config.Instance{URL: e.s.URL() + "/instances/sales", SecurityGroupID: SalesGroupID}, "DYN365_ENTERPRISE_SALES", "Salesperson", "Sales Manager"),
		"service": allow(config.Instance{URL: e.s.URL() + "/instances/service"}, "DYN365_ENTERPRISE_CUSTOMER_SERVICE", "Customer Service Representative", "Sales Manager"),
		"legacy":  allow(config.Instance{URL: e.s.URL() + "/instances/legacy", LegacyEmailUpdate: true}, "DYN365_ENTERPRISE_PLAN1", "Basic User", "Sales Manager"),
	}
	// environmentId stays empty: the normal path is the delayed sync.
	wantRaw, _ := json.Marshal(want)
	if string(raw) != string(wantRaw) {
		t.Errorf("instances\n got %s\nwant %s", raw, wantRaw)
	}
	// The instance URL, where an invitation lands by default, answers.
	if r := e.do("GET", "/instances/sales", "", nil); r.status != 200 {
		t.Errorf("instance page: %d", r.status)
	}
}
