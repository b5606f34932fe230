// Package e2e runs guestflow end to end: an embedded NATS server, the
// emulator over HTTPS, and the four workers built exactly as `guestflow
// worker` builds them, on the real azidentity, msgraph-sdk-go and Dataverse
// client code paths.
package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/guestflow/guestflow/internal/graphsim"
	"github.com/guestflow/guestflow/pkg/events"
)

// Inspection API shapes (docs/emulator.md).
type (
	simUser struct {
		ID                string   `json:"id"`
		Mail              string   `json:"mail"`
		UserPrincipalName string   `json:"userPrincipalName"`
		UserType          string   `json:"userType"`
		GivenName         string   `json:"givenName"`
		Surname           string   `json:"surname"`
		DisplayName       string   `json:"displayName"`
		UsageLocation     string   `json:"usageLocation"`
		AssignedLicenses  []string `json:"assignedLicenses"`
		Groups            []string `json:"groups"`
	}
	simInstance struct {
		Name            string  `json:"name"`
		URL             string  `json:"url"`
		SecurityGroupID *string `json:"securityGroupId"`
	}
	simSystemUser struct {
		SystemUserID  string   `json:"systemuserid"`
		ObjectID      string   `json:"azureactivedirectoryobjectid"`
		InternalEmail string   `json:"internalemailaddress"`
		Roles         []string `json:"roles"`
	}
	simMail struct {
		From        string   `json:"from"`
		To          []string `json:"to"`
		Subject     string   `json:"subject"`
		ContentType string   `json:"contentType"`
		Body        string   `json:"body"`
	}
)

func joinedBody(t *testing.T, j events.Joined, id string, ext map[string]string) []byte {
	t.Helper()
	ev, err := events.NewJoined(id, "hr/test", j, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range ext {
		ev.SetExtension(k, v)
	}
	_, body, err := events.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// TestOnboardsEveryInstance publishes one user per seeded instance — in
// structured mode, in binary mode, and with a trace context — and checks
// every outcome Microsoft's procedure asks for in the emulator's state.
func TestOnboardsEveryInstance(t *testing.T) {
	s := start(t, graphsim.Options{SyncDelay: 300 * time.Millisecond})

	const trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	users := map[string]events.Joined{
		"sales": {Email: "Ana.Silva@Fabrikam.com", GivenName: " Ana ", Surname: "Silva", UsageLocation: "pt",
			Instance: "sales", Message: "Welcome <b>team</b> & co"},
		"service": {Email: "liam.o'brien@contoso.example", GivenName: "Liam", Surname: "O'Brien", UsageLocation: "IE",
			Instance: "service"},
		"legacy": {Email: "kenji.sato@adatum.example", GivenName: "Kenji", Surname: "Sato", UsageLocation: "JP",
			Instance: "legacy"},
	}
	ids := map[string]string{"sales": "hr-1001", "service": "hr-1002", "legacy": "hr-1003"}

	// sales: structured mode, no Content-Type header at all.
	s.publish(nats.Header{}, joinedBody(t, users["sales"], ids["sales"], nil))
	// service: binary mode, as an HR system without a CloudEvents SDK would send it.
	data, _ := json.Marshal(users["service"])
	s.publish(nats.Header{
		"ce-specversion": {"1.0"}, "ce-id": {ids["service"]}, "ce-source": {"hr/test"},
		"ce-type": {events.TypeJoined}, "Content-Type": {"application/json; charset=utf-8"},
	}, data)
	// legacy: structured, carrying a trace context.
	s.publish(nats.Header{"Content-Type": {"application/cloudevents+json"}},
		joinedBody(t, users["legacy"], ids["legacy"], map[string]string{events.ExtTraceparent: trace}))

	done := s.await(ids["sales"], ids["service"], ids["legacy"])

	var instances []simInstance
	s.inspect("/_sim/instances", &instances)
	groupOf := map[string]string{}
	for _, in := range instances {
		if in.SecurityGroupID != nil {
			groupOf[in.Name] = *in.SecurityGroupID
		}
	}
	if groupOf["sales"] == "" || len(groupOf) != 1 {
		t.Fatalf("seeded tenant: want exactly sales with a security group, got %v", groupOf)
	}
	var dirUsers []simUser
	s.inspect("/_sim/users", &dirUsers)
	var mails []simMail
	s.inspect("/_sim/mail", &mails)

	for name, j := range users {
		inst := s.cfg.Instances[name]
		email := strings.ToLower(j.Email)
		ev := done[ids[name]]
		var out events.Onboarded
		if err := ev.DataAs(&out); err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) {
			if ev.Source() != "guestflow/notify" || ev.Subject() != email || ev.Type() != events.TypeOnboarded {
				t.Errorf("onboarded envelope: source %q subject %q type %q", ev.Source(), ev.Subject(), ev.Type())
			}
			if out.NotifiedAt == "" || out.SkuPartNumber != inst.License || out.UserID == "" || out.SystemUserID == "" {
				t.Errorf("onboarded data incomplete: %+v", out)
			}
			// The guest in the directory: invited, profiled, licensed, grouped.
			var u *simUser
			for i := range dirUsers {
				if strings.EqualFold(dirUsers[i].Mail, email) {
					if u != nil {
						t.Fatalf("two directory users for %s", email)
					}
					u = &dirUsers[i]
				}
			}
			if u == nil {
				t.Fatalf("no directory user for %s", email)
			}
			if u.ID != out.UserID || u.UserType != "Guest" || !strings.Contains(u.UserPrincipalName, "#EXT#") {
				t.Errorf("directory user: %+v, event user id %s", u, out.UserID)
			}
			if u.GivenName != strings.TrimSpace(j.GivenName) || u.Surname != j.Surname || u.UsageLocation != strings.ToUpper(j.UsageLocation) {
				t.Errorf("profile not written: %+v", u)
			}
			if len(u.AssignedLicenses) != 1 || u.AssignedLicenses[0] != inst.License {
				t.Errorf("licenses: %v, want [%s]", u.AssignedLicenses, inst.License)
			}
			wantGroups := 0
			if name == "sales" {
				wantGroups = 1
				if len(u.Groups) != 1 || u.Groups[0] != groupOf["sales"] || out.GroupID != groupOf["sales"] {
					t.Errorf("groups %v / event groupId %q, want %s", u.Groups, out.GroupID, groupOf["sales"])
				}
			}
			if len(u.Groups) != wantGroups {
				t.Errorf("groups %v, want %d", u.Groups, wantGroups)
			}
			// The systemuser in the environment: roles and the legacy email fix.
			var sus []simSystemUser
			s.inspect("/_sim/instances/"+name+"/systemusers", &sus)
			var su *simSystemUser
			for i := range sus {
				if sus[i].ObjectID == out.UserID {
					su = &sus[i]
				}
			}
			if su == nil {
				t.Fatalf("no systemuser for %s in %s", out.UserID, name)
			}
			if su.SystemUserID != out.SystemUserID || len(su.Roles) != len(inst.Roles) || su.Roles[0] != inst.Roles[0] {
				t.Errorf("systemuser %+v, want roles %v", su, inst.Roles)
			}
			if su.InternalEmail != email {
				t.Errorf("internalemailaddress %q, want %q", su.InternalEmail, email)
			}
			if out.EmailUpdated != (name == "legacy") {
				t.Errorf("emailUpdated %v on %s", out.EmailUpdated, name)
			}
			// Exactly one mail, with the links and the unsupported features.
			var mine []simMail
			for _, m := range mails {
				if len(m.To) == 1 && m.To[0] == email {
					mine = append(mine, m)
				}
			}
			if len(mine) != 1 {
				t.Fatalf("%d mails to %s, want 1", len(mine), email)
			}
			m := mine[0]
			if m.From != s.cfg.Notify.Sender || m.ContentType != "html" {
				t.Errorf("mail from %q type %q", m.From, m.ContentType)
			}
			for _, want := range []string{inst.URL, htmlEscaped(out.InviteRedeemURL), "Unified Service Desk", "App for Outlook",
				"server-side email synchronization", "Office 365 Groups"} {
				if want == "" || !strings.Contains(m.Body, want) {
					t.Errorf("mail body lacks %q:\n%s", want, m.Body)
				}
			}
		})
	}
	if body := mailTo(mails, "ana.silva@fabrikam.com"); !strings.Contains(body, "Welcome &lt;b&gt;team&lt;/b&gt; &amp; co") {
		t.Errorf("personal message not escaped in:\n%s", body)
	}
	if tp, _ := done[ids["legacy"]].Extensions()[events.ExtTraceparent].(string); !strings.HasPrefix(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || tp == trace {
		t.Errorf("traceparent %q is not a child of %q", tp, trace)
	}
	if dl := s.deadLetters(); len(dl) != 0 {
		t.Errorf("dead letters: %v", dl)
	}
	// The procedure's calls and nothing else: in particular no mailbox
	// approval or server-side sync profile, which B2B guests cannot have.
	allowed := map[string]bool{
		"GET /v1.0/users": true, "GET /v1.0/users/{id}": true, "POST /v1.0/invitations": true,
		"POST /v1.0/groups/{id}/members/$ref": true, "PATCH /v1.0/users/{id}": true,
		"GET /v1.0/subscribedSkus":            true,
		"POST /v1.0/users/{id}/assignLicense": true, "POST /v1.0/users/{id}/sendMail": true,
		"GET /instances/{instance}/api/data/v9.2/systemusers":                                         true,
		"GET /instances/{instance}/api/data/v9.2/businessunits":                                       true,
		"GET /instances/{instance}/api/data/v9.2/roles":                                               true,
		"GET /instances/{instance}/api/data/v9.2/systemusers({id})/systemuserroles_association":       true,
		"POST /instances/{instance}/api/data/v9.2/systemusers({id})/systemuserroles_association/$ref": true,
		"PATCH /instances/{instance}/api/data/v9.2/systemusers({id})":                                 true,
	}
	var stats struct {
		Calls map[string]map[string]int `json:"calls"`
	}
	s.inspect("/_sim/stats", &stats)
	for route := range stats.Calls {
		if !allowed[route] {
			t.Errorf("unexpected call %s", route)
		}
	}
	if n := stats.Calls["PATCH /instances/{instance}/api/data/v9.2/systemusers({id})"]["204"]; n != 1 {
		t.Errorf("%d systemuser updates, want exactly the legacy email fix", n)
	}
	if n := stats.Calls["POST /v1.0/invitations"]; n["201"] != len(users) || len(n) != 1 {
		t.Errorf("invitations answered %v, want exactly one 201 per new address (%d)", n, len(users))
	}
}

func mailTo(mails []simMail, to string) string {
	for _, m := range mails {
		if len(m.To) == 1 && m.To[0] == to {
			return m.Body
		}
	}
	return ""
}

// htmlEscaped is how html/template writes a URL inside an attribute or text.
func htmlEscaped(s string) string { return strings.ReplaceAll(s, "&", "&amp;") }
