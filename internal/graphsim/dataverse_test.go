package graphsim

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// systemUserOf queries an instance's systemusers as guestflow's role step does.
func (e *env) systemUserOf(instance, userID string) []map[string]any {
	e.t.Helper()
	r := e.dv(instance, "GET", "/systemusers?$filter="+url.QueryEscape("azureactivedirectoryobjectid eq "+userID)+
		"&$select=systemuserid,internalemailaddress,_businessunitid_value", nil)
	if r.status != 200 {
		e.t.Fatalf("systemusers: %d %s", r.status, r.raw)
	}
	if r.header.Get("OData-Version") != "4.0" || r.header.Get("x-ms-service-request-id") == "" {
		e.t.Errorf("Dataverse headers missing: %v", r.header)
	}
	return r.values()
}

func TestSyncDelay(t *testing.T) {
	e := start(t, Options{SyncDelay: 10 * time.Second})
	id := e.onboard("ana@fabrikam.com", SkuCustomerService)

	if got := e.systemUserOf("service", id); len(got) != 0 {
		t.Fatalf("synced before the delay: %v", got)
	}
	e.s.advance(9 * time.Second)
	if got := e.systemUserOf("service", id); len(got) != 0 {
		t.Fatalf("synced after 9s of 10s: %v", got)
	}
	e.s.advance(2 * time.Second)
	got := e.systemUserOf("service", id)
	if len(got) != 1 {
		t.Fatalf("not synced after the delay: %v", got)
	}
	su := got[0]
	if su["systemuserid"] != derivedID("systemuser", "service", id) || su["internalemailaddress"] != "ana@fabrikam.com" ||
		su["_businessunitid_value"] != e.s.instances["service"].rootBU.id {
		t.Errorf("systemuser %v", su)
	}
	if _, ok := su["fullname"]; ok {
		t.Errorf("$select ignored: %v", su)
	}

	// sales has a security group: a license alone is not enough.
	if got := e.systemUserOf("sales", id); len(got) != 0 {
		t.Errorf("synced into sales without group membership: %v", got)
	}
	e.graph("POST", "/groups/"+SalesGroupID+"/members/$ref", map[string]any{"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/" + id})
	e.s.advance(9 * time.Second)
	if got := e.systemUserOf("sales", id); len(got) != 0 {
		t.Errorf("synced into sales before the delay after joining the group: %v", got)
	}
	e.s.advance(time.Second)
	if got := e.systemUserOf("sales", id); len(got) != 1 {
		t.Errorf("not synced into sales: %v", got)
	}

	// An unlicensed user never syncs.
	other := invitedID(e.invite("bob@contoso.example"))
	e.s.advance(time.Hour)
	if got := e.systemUserOf("service", other); len(got) != 0 {
		t.Errorf("unlicensed user synced: %v", got)
	}
}

func TestLegacyEmailFix(t *testing.T) {
	e := start(t, Options{SyncDelay: -1})
	id := e.onboard("liam.o'brien@x.com", SkuPlan1)
	su := e.systemUserOf("legacy", id)
	if len(su) != 1 || su[0]["internalemailaddress"] != "liam.o'brien_x.com#EXT#@"+TenantDomain {
		t.Fatalf("legacy systemuser %v, want the #EXT# UPN as email", su)
	}
	sid := su[0]["systemuserid"].(string)
	if r := e.dv("legacy", "PATCH", "/systemusers("+sid+")", map[string]any{"internalemailaddress": "liam.o'brien@x.com"}); r.status != 204 {
		t.Fatalf("PATCH: %d %s", r.status, r.raw)
	}
	if r := e.dv("legacy", "GET", "/systemusers("+sid+")?$select=internalemailaddress", nil); r.str("internalemailaddress") != "liam.o'brien@x.com" {
		t.Errorf("after PATCH: %s", r.raw)
	}
	for name, body := range map[string]any{
		"unknown column": map[string]any{"emailaddress": "x@y.example"},
		"wrong case":     map[string]any{"InternalEmailAddress": "x@y.example"},
		"too long":       map[string]any{"internalemailaddress": strings.Repeat("a", 95) + "@x.example"},
	} {
		if r := e.dv("legacy", "PATCH", "/systemusers("+sid+")", body); r.status != 400 || !strings.HasPrefix(r.errCode(), "0x") {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
	if r := e.dv("legacy", "PATCH", "/systemusers(00000000-0000-0000-0000-000000000001)", map[string]any{"internalemailaddress": "a@b.example"}); r.status != 404 || r.errCode() != "0x80040217" {
		t.Errorf("PATCH unknown systemuser: %d %s", r.status, r.raw)
	}
}

func TestRolesPerBusinessUnit(t *testing.T) {
	e := start(t, Options{SyncDelay: -1})
	id := e.onboard("ana@fabrikam.com", SkuSales)
	e.graph("POST", "/groups/"+SalesGroupID+"/members/$ref", map[string]any{"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/" + id})
	sid := e.systemUserOf("sales", id)[0]["systemuserid"].(string)

	bus := e.dv("sales", "GET", "/businessunits?$filter="+url.QueryEscape("_parentbusinessunitid_value eq null")+"&$select=businessunitid,name", nil).values()
	if len(bus) != 1 || bus[0]["name"] != "guestflowdev-sales" {
		t.Fatalf("root business units %v", bus)
	}
	root := bus[0]["businessunitid"].(string)
	child := e.s.instances["sales"].childBU.id

	byName := e.dv("sales", "GET", "/roles?$filter="+url.QueryEscape("name eq 'Salesperson'"), nil).values()
	if len(byName) != 2 || byName[0]["roleid"] == byName[1]["roleid"] {
		t.Fatalf("Salesperson should exist once per business unit with different ids: %v", byName)
	}
	roleIn := func(bu string) string {
		r := e.dv("sales", "GET", "/roles?$filter="+url.QueryEscape("name eq 'Salesperson' and _businessunitid_value eq "+bu)+"&$select=roleid,name", nil)
		v := r.values()
		if len(v) != 1 || v[0]["_businessunitid_value"] != nil {
			t.Fatalf("role in %s: %s", bu, r.raw)
		}
		return v[0]["roleid"].(string)
	}
	rootRole, childRole := roleIn(root), roleIn(child)

	assoc := "/systemusers(" + sid + ")/systemuserroles_association/$ref"
	ref := func(roleID string) map[string]any {
		return map[string]any{"@odata.id": e.s.URL() + "/instances/sales/api/data/v9.2/roles(" + roleID + ")"}
	}
	tests := []struct {
		name   string
		path   string
		body   any
		status int
		code   string
	}{
		{"role of another business unit", assoc, ref(childRole), 400, "0x80040203"},
		{"unknown role", assoc, ref("00000000-0000-0000-0000-000000000001"), 404, "0x80040217"},
		{"unknown systemuser", "/systemusers(00000000-0000-0000-0000-000000000002)/systemuserroles_association/$ref", ref(rootRole), 404, "0x80040217"},
		{"not a role reference", assoc, map[string]any{"@odata.id": "roles"}, 400, "0x80060888"},
		{"associate", assoc, ref(rootRole), 204, ""},
		{"duplicate", assoc, ref(rootRole), 400, "0x80040237"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.dv("sales", "POST", tt.path, tt.body)
			if r.status != tt.status || r.errCode() != tt.code {
				t.Errorf("%d %s, want %d %s", r.status, r.raw, tt.status, tt.code)
			}
		})
	}
	if r := e.dv("sales", "POST", assoc, ref(rootRole)); r.errMessage() != "Cannot insert duplicate key." {
		t.Errorf("duplicate message %q", r.errMessage())
	}

	current := e.dv("sales", "GET", "/systemusers("+sid+")/systemuserroles_association?$select=roleid,name", nil).values()
	if len(current) != 1 || current[0]["roleid"] != rootRole || current[0]["name"] != "Salesperson" {
		t.Errorf("current roles %v", current)
	}
	list, _ := e.s.SystemUsers("sales")
	if len(list) != 1 || strings.Join(list[0].Roles, ",") != "Salesperson" {
		t.Errorf("/_sim systemusers %+v", list)
	}
}

func TestDataverseFilterErrors(t *testing.T) {
	e := start(t, Options{})
	for _, f := range []string{
		"azureactivedirectoryobjectid eq '" + MeganUserID + "'", // a GUID column compared with a string
		"azureactivedirectoryobjectid eq",
		"AzureActiveDirectoryObjectId eq " + MeganUserID, // Dataverse names are exact
		"name eq 'x'",
	} {
		r := e.dv("sales", "GET", "/systemusers?$filter="+url.QueryEscape(f), nil)
		if r.status != 400 || r.errCode() != "0x80060888" {
			t.Errorf("%q: %d %s", f, r.status, r.raw)
		}
	}
	if r := e.dv("sales", "GET", "/systemusers?$select=nosuch", nil); r.status != 400 {
		t.Errorf("unknown $select column: %d", r.status)
	}
	if r := e.dv("sales", "GET", "/systemusers(not-a-guid)", nil); r.status != 400 {
		t.Errorf("bad key: %d", r.status)
	}
	if r := e.dv("sales", "GET", "/WhoAmI", nil); r.status != 200 || r.str("BusinessUnitId") != e.s.instances["sales"].rootBU.id {
		t.Errorf("WhoAmI: %d %s", r.status, r.raw)
	}
}
