package app_test

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/guestflow/guestflow/internal/dataverse"
	"github.com/guestflow/guestflow/internal/directory"
	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/graph"
	"github.com/guestflow/guestflow/internal/graphsim"
	"github.com/guestflow/guestflow/internal/httpclient"
)

// env is one emulator and guestflow's real clients for it.
type env struct {
	sim *graphsim.Sim
	g   *graph.Client
	dv  *dataverse.Client
	url string
}

func (e env) instance(name string) string { return e.url + "/instances/" + name }

func newEnv(t *testing.T, o graphsim.Options, secret string, cred azcore.TokenCredential) env {
	t.Helper()
	sim, err := graphsim.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	hc := httpclient.WithPool(sim.CertPool(), 10*time.Second)
	if cred == nil {
		if secret == "" {
			secret = graphsim.DefaultClientSecret
		}
		cred, err = graph.NewCredential(graph.CredentialOptions{
			TenantID: graphsim.DefaultTenantID, ClientID: graphsim.DefaultClientID, ClientSecret: secret,
			AuthorityHost: sim.URL() + "/", HTTPClient: hc,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	g, err := graph.New(cred, sim.URL(), hc, graph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return env{sim: sim, g: g, dv: dataverse.New(cred, hc), url: sim.URL()}
}

// badToken is a credential whose tokens no service accepts.
type badToken struct{}

func (badToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "not-a-token", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// guest invites a fresh guest and returns its id.
func guest(t *testing.T, e env, addr string) string {
	t.Helper()
	inv, err := e.g.Invite(context.Background(), addr, "Test Guest", "https://example.com")
	if err != nil {
		t.Fatal(err)
	}
	return inv.UserID
}

const unknownID = "0badc0de-0000-4000-8000-000000000000"

// verdictCase is one error the emulator can produce, made through the
// client call guestflow makes, and the verdict failure.Classify must give.
type verdictCase struct {
	name      string
	call      func(t *testing.T, e env) error
	status    int
	code      string
	retryable bool
	reason    string
}

// TestEveryEmulatorErrorHasItsVerdict pins, for every error the emulator
// answers a call guestflow makes with, what the client reports (status and
// code) and what Classify decides (retry or dead letter, and the reason).
// A deterministic failure must be dead-lettered at once with a reason that
// says what to fix; only throttling, outages, replication lag and a sync
// still pending are retried. TestEveryEmulatorErrorCodeIsCovered keeps the
// list complete.
func TestEveryEmulatorErrorHasItsVerdict(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, graphsim.Options{}, "", nil)
	sales, legacy := e.instance("sales"), e.instance("legacy")
	bu := func(t *testing.T, inst string) string {
		id, err := e.dv.BusinessUnit(ctx, inst, "")
		if err != nil || id == "" {
			t.Fatalf("root business unit of %s: %q, %v", inst, id, err)
		}
		return id
	}
	// synced makes a licensed guest in sales' group and waits for their
	// systemuser in sales.
	synced := func(t *testing.T, addr string) string {
		id := guest(t, e, addr)
		if err := e.g.UpdateProfile(ctx, id, directory.Profile{GivenName: "T", Surname: "G", DisplayName: "T G", UsageLocation: "PT"}); err != nil {
			t.Fatal(err)
		}
		if err := e.g.AssignLicense(ctx, id, graphsim.SkuPlan1); err != nil {
			t.Fatal(err)
		}
		if err := e.g.AddGroupMember(ctx, graphsim.SalesGroupID, id); err != nil {
			t.Fatal(err)
		}
		if err := e.dv.ForceSync(ctx, e.url, graphsim.SalesEnvironmentID, id); err != nil {
			t.Fatal(err)
		}
		su, err := e.dv.FindSystemUser(ctx, sales, id)
		if err != nil || su == nil {
			t.Fatalf("systemuser of %s: %v, %v", id, su, err)
		}
		return su.ID
	}
	cases := []verdictCase{
		// Graph: invitations.
		{"invite an address that is not one", func(t *testing.T, e env) error {
			_, err := e.g.Invite(ctx, "not-an-address", "X", "https://example.com")
			return err
		}, 400, "BadRequest", false, failure.GraphError},
		{"invite an address of the tenant's own domain", func(t *testing.T, e env) error {
			_, err := e.g.Invite(ctx, "someone@"+graphsim.TenantDomain, "X", "https://example.com")
			return err
		}, 400, "BadRequest", false, failure.GraphError},
		// Graph: users.
		{"read a user that is not there (yet)", func(t *testing.T, e env) error {
			_, err := e.g.GetUser(ctx, unknownID)
			return err
		}, 404, "Request_ResourceNotFound", true, failure.ReplicationLag},
		{"write a profile with a usage location that is no country", func(t *testing.T, e env) error {
			id := guest(t, e, "profile.bad@fabrikam.example")
			return e.g.UpdateProfile(ctx, id, directory.Profile{GivenName: "A", Surname: "B", DisplayName: "A B", UsageLocation: "XX"})
		}, 400, "Request_BadRequest", false, failure.GraphError},
		{"write the profile of a user not replicated yet", func(t *testing.T, e env) error {
			return e.g.UpdateProfile(ctx, unknownID, directory.Profile{GivenName: "A", Surname: "B", DisplayName: "A B", UsageLocation: "PT"})
		}, 404, "Request_ResourceNotFound", true, failure.ReplicationLag},
		// Graph: licenses.
		{"assign a license without a usage location", func(t *testing.T, e env) error {
			id := guest(t, e, "no.location@fabrikam.example")
			return e.g.AssignLicense(ctx, id, graphsim.SkuSales)
		}, 400, "Request_BadRequest", false, failure.GraphError},
		{"assign a SKU the tenant does not have", func(t *testing.T, e env) error {
			id := guest(t, e, "bad.sku@fabrikam.example")
			return e.g.AssignLicense(ctx, id, unknownID)
		}, 400, "Request_BadRequest", false, failure.GraphError},
		{"assign a SKU id that is no GUID", func(t *testing.T, e env) error {
			return e.g.AssignLicense(ctx, unknownID, "DYN365_ENTERPRISE_SALES")
		}, 0, "", false, failure.InvalidRequest},
		{"assign the last seat twice", func(t *testing.T, e env) error {
			if _, err := e.sim.SetSeats("DYN365_ENTERPRISE_CUSTOMER_SERVICE", 1); err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				id := guest(t, e, fmt.Sprintf("seat.%d@fabrikam.example", i))
				if err := e.g.UpdateProfile(ctx, id, directory.Profile{GivenName: "A", Surname: "B", DisplayName: "A B", UsageLocation: "PT"}); err != nil {
					return err
				}
				if err := e.g.AssignLicense(ctx, id, graphsim.SkuCustomerService); err != nil {
					return err
				}
			}
			return nil
		}, 400, "Request_BadRequest", false, failure.NoLicenseSeats},
		// Graph: groups.
		{"add to a group that does not exist", func(t *testing.T, e env) error {
			return e.g.AddGroupMember(ctx, unknownID, graphsim.MeganUserID)
		}, 404, "Request_ResourceNotFound", false, failure.UnknownGroup},
		{"add a user not replicated yet", func(t *testing.T, e env) error {
			return e.g.AddGroupMember(ctx, graphsim.SalesGroupID, unknownID)
		}, 400, "Request_BadRequest", true, failure.ReplicationLag},
		// Graph: mail.
		{"mail from a sender that does not exist", func(t *testing.T, e env) error {
			return e.g.SendMail(ctx, directory.Mail{From: "nobody@" + graphsim.TenantDomain, To: "a@fabrikam.example", Subject: "s", HTML: "<p>x</p>"})
		}, 404, "ErrorInvalidUser", false, failure.InvalidConfig},
		{"mail from a user without a mailbox", func(t *testing.T, e env) error {
			id := guest(t, e, "no.mailbox@fabrikam.example")
			return e.g.SendMail(ctx, directory.Mail{From: id, To: "a@fabrikam.example", Subject: "s", HTML: "<p>x</p>"})
		}, 404, "MailboxNotEnabledForRESTAPI", false, failure.InvalidConfig},
		{"mail to an address that is not one", func(t *testing.T, e env) error {
			return e.g.SendMail(ctx, directory.Mail{From: graphsim.SenderAddress, To: "not an address", Subject: "s", HTML: "<p>x</p>"})
		}, 400, "ErrorInvalidRecipients", false, failure.GraphError},
		// Dataverse Web API.
		{"an instance URL that names no organization", func(t *testing.T, e env) error {
			_, err := e.dv.FindSystemUser(ctx, e.instance("nowhere"), unknownID)
			return err
		}, 400, "invalid_resource", false, failure.InvalidConfig},
		{"a user id that is no GUID", func(t *testing.T, e env) error {
			_, err := e.dv.FindSystemUser(ctx, sales, "x' or '1' eq '1")
			return err
		}, 0, "", false, failure.InvalidRequest},
		{"associate a role with a systemuser that does not exist", func(t *testing.T, e env) error {
			r, err := e.dv.FindRole(ctx, sales, "Salesperson", bu(t, sales))
			if err != nil || r == nil {
				t.Fatalf("role: %v %v", r, err)
			}
			return e.dv.AssociateRole(ctx, sales, unknownID, r.ID)
		}, 404, "0x80040217", false, failure.DataverseError},
		{"associate a role of another instance", func(t *testing.T, e env) error {
			su := synced(t, "other.bu@fabrikam.example")
			r, err := e.dv.FindRole(ctx, legacy, "Basic User", bu(t, legacy))
			if err != nil || r == nil {
				t.Fatalf("role: %v %v", r, err)
			}
			return e.dv.AssociateRole(ctx, sales, su, r.ID)
		}, 404, "0x80040217", false, failure.DataverseError},
		{"associate a role twice", func(t *testing.T, e env) error {
			su := synced(t, "twice@fabrikam.example")
			r, err := e.dv.FindRole(ctx, sales, "Salesperson", bu(t, sales))
			if err != nil || r == nil {
				t.Fatalf("role: %v %v", r, err)
			}
			if err := e.dv.AssociateRole(ctx, sales, su, r.ID); err != nil {
				return err
			}
			return e.dv.AssociateRole(ctx, sales, su, r.ID)
		}, 400, "0x80040237", false, failure.DataverseError},
		{"set an email address that is not one", func(t *testing.T, e env) error {
			return e.dv.SetInternalEmail(ctx, sales, synced(t, "bad.mail@fabrikam.example"), "not-an-address")
		}, 400, "0x80040203", false, failure.DataverseError},
		{"set an email address longer than 100 characters", func(t *testing.T, e env) error {
			return e.dv.SetInternalEmail(ctx, sales, synced(t, "long.mail@fabrikam.example"), strings.Repeat("a", 100)+"@fabrikam.example")
		}, 400, "0x80044331", false, failure.DataverseError},
		// Power Platform admin API.
		{"force the sync into an environment that does not exist", func(t *testing.T, e env) error {
			return e.dv.ForceSync(ctx, e.url, unknownID, graphsim.MeganUserID)
		}, 404, "EnvironmentNotFound", false, failure.InvalidConfig},
		{"force the sync of a user Power Platform cannot see yet", func(t *testing.T, e env) error {
			return e.dv.ForceSync(ctx, e.url, graphsim.SalesEnvironmentID, unknownID)
		}, 404, "UserNotFound", true, failure.ReplicationLag},
		{"force the sync of a user without a license", func(t *testing.T, e env) error {
			return e.dv.ForceSync(ctx, e.url, graphsim.SalesEnvironmentID, guest(t, e, "unlicensed@fabrikam.example"))
		}, 403, "userNotLicensed", true, failure.UserNotSynced},
		{"force the sync of a user outside the security group", func(t *testing.T, e env) error {
			id := guest(t, e, "outside@fabrikam.example")
			if err := e.g.UpdateProfile(ctx, id, directory.Profile{GivenName: "A", Surname: "B", DisplayName: "A B", UsageLocation: "PT"}); err != nil {
				return err
			}
			if err := e.g.AssignLicense(ctx, id, graphsim.SkuPlan1); err != nil {
				return err
			}
			return e.dv.ForceSync(ctx, e.url, graphsim.SalesEnvironmentID, id)
		}, 403, "userNotInSecurityGroup", true, failure.UserNotSynced},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { check(t, c, c.call(t, e)) })
	}
	// The business unit lookup finds nothing rather than failing: the
	// role step marks that unknown_business_unit (functions/role).
	if id, err := e.dv.BusinessUnit(ctx, sales, "No Such Unit"); err != nil || id != "" {
		t.Errorf("BusinessUnit(no such unit) = %q, %v; want \"\", nil", id, err)
	}
	// Success that Graph reports as an error: already a member.
	if err := e.g.AddGroupMember(ctx, graphsim.SalesGroupID, guestOnce(t, e)); err != nil {
		t.Errorf("a second add of the same member must succeed: %v", err)
	}
}

// guestOnce makes a guest, adds it to sales' group once and returns it.
func guestOnce(t *testing.T, e env) string {
	t.Helper()
	id := guest(t, e, "member.twice@fabrikam.example")
	if err := e.g.AddGroupMember(context.Background(), graphsim.SalesGroupID, id); err != nil {
		t.Fatal(err)
	}
	return id
}

func check(t *testing.T, c verdictCase, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("the call succeeded; want HTTP %d %s", c.status, c.code)
	}
	var r *failure.Remote
	if !errors.As(err, &r) {
		t.Fatalf("%v (%T) is no *failure.Remote", err, err)
	}
	if r.Status != c.status || r.Code != c.code {
		t.Errorf("client reported HTTP %d %q, want %d %q: %v", r.Status, r.Code, c.status, c.code, err)
	}
	v := failure.Classify(err)
	if v.Retryable != c.retryable || v.Reason != c.reason {
		t.Errorf("Classify: retryable %v reason %s, want %v %s: %v", v.Retryable, v.Reason, c.retryable, c.reason, err)
	}
	if c.status != 0 && v.Status != c.status {
		t.Errorf("verdict status %d, want %d", v.Status, c.status)
	}
	if c.status != 0 && c.status != 429 && v.RequestID == "" {
		t.Errorf("no request id in the verdict: %v", err)
	}
	seen[c.code] = true
}

// seen collects the codes the cases produced, for the coverage check.
var seen = map[string]bool{}

// TestTokenErrorsHaveTheirVerdict covers what Entra ID and the services
// answer about the app's identity: all of it is auth_failed at once.
func TestTokenErrorsHaveTheirVerdict(t *testing.T) {
	ctx := context.Background()
	wrong := newEnv(t, graphsim.Options{}, "wrong-secret", nil)
	check(t, verdictCase{code: "invalid_client", status: 401, reason: failure.AuthFailed},
		func() error { _, err := wrong.g.GetUser(ctx, graphsim.MeganUserID); return err }())

	bad := newEnv(t, graphsim.Options{}, "", badToken{})
	for _, c := range []verdictCase{
		{"graph", func(t *testing.T, e env) error { _, err := e.g.GetUser(ctx, graphsim.MeganUserID); return err },
			401, "InvalidAuthenticationToken", false, failure.AuthFailed},
		{"dataverse", func(t *testing.T, e env) error {
			_, err := e.dv.FindSystemUser(ctx, e.instance("sales"), graphsim.MeganUserID)
			return err
		}, 401, "0x80072560", false, failure.AuthFailed},
		{"power platform", func(t *testing.T, e env) error {
			return e.dv.ForceSync(ctx, e.url, graphsim.SalesEnvironmentID, graphsim.MeganUserID)
		}, 401, "InvalidAuthenticationToken", false, failure.AuthFailed},
	} {
		t.Run(c.name, func(t *testing.T) { check(t, c, c.call(t, bad)) })
	}
}

// TestMissingPermissionsArePermissionDenied covers each service's answer
// to a call the app has no permission for.
func TestMissingPermissionsArePermissionDenied(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, graphsim.Options{Deny: []string{
		"POST /v1.0/users/{id}/sendMail",
		"GET /instances/{instance}/api/data/v9.2/businessunits",
		"POST /providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/{id}/addUser",
	}}, "", nil)
	for _, c := range []verdictCase{
		{"graph", func(t *testing.T, e env) error {
			return e.g.SendMail(ctx, directory.Mail{From: graphsim.SenderAddress, To: "a@fabrikam.example", Subject: "s", HTML: "<p>x</p>"})
		}, 403, "Authorization_RequestDenied", false, failure.PermissionDenied},
		{"dataverse", func(t *testing.T, e env) error {
			_, err := e.dv.BusinessUnit(ctx, e.instance("sales"), "")
			return err
		}, 403, "0x80040220", false, failure.PermissionDenied},
		{"power platform", func(t *testing.T, e env) error {
			return e.dv.ForceSync(ctx, e.url, graphsim.SalesEnvironmentID, graphsim.MeganUserID)
		}, 403, "AuthorizationFailed", false, failure.PermissionDenied},
	} {
		t.Run(c.name, func(t *testing.T) { check(t, c, c.call(t, e)) })
	}
}

// TestThrottlingAndOutagesAreRetried covers the emulator's 429s (budgets,
// Dataverse's service protection, a mailbox's limit) and its injected faults: all retryable,
// 429s with the Retry-After the service named.
func TestThrottlingAndOutagesAreRetried(t *testing.T) {
	ctx := context.Background()
	budget := newEnv(t, graphsim.Options{WriteLimit: graphsim.Limit{N: 1, Per: time.Minute}, DataverseLimit: graphsim.Limit{N: 1, Per: time.Minute}}, "", nil)
	id := guest(t, budget, "budget@fabrikam.example") // spends the one write
	err := budget.g.UpdateProfile(ctx, id, directory.Profile{GivenName: "A", Surname: "B", DisplayName: "A B", UsageLocation: "PT"})
	check(t, verdictCase{status: 429, code: "TooManyRequests", retryable: true, reason: failure.Throttled}, err)
	if v := failure.Classify(err); v.After < time.Second {
		t.Errorf("Retry-After lost: %+v", v)
	}
	sales := budget.instance("sales")
	_, _ = budget.dv.BusinessUnit(ctx, sales, "")
	_, err = budget.dv.BusinessUnit(ctx, sales, "")
	check(t, verdictCase{status: 429, code: "0x80072322", retryable: true, reason: failure.Throttled}, err)

	mail := newEnv(t, graphsim.Options{MailLimit: graphsim.Limit{N: 1, Per: time.Minute}}, "", nil)
	send := func() error {
		return mail.g.SendMail(ctx, directory.Mail{From: graphsim.SenderAddress, To: "a@fabrikam.example", Subject: "s", HTML: "<p>x</p>"})
	}
	if err := send(); err != nil {
		t.Fatal(err)
	}
	check(t, verdictCase{status: 429, code: "ApplicationThrottled", retryable: true, reason: failure.Throttled}, send())

	faulty := newEnv(t, graphsim.Options{FaultRate: 1}, "", nil)
	want := map[string]string{ // status → reason, per service
		"graph 429": failure.Throttled, "graph 500": failure.GraphError, "graph 503": failure.GraphError, "graph 504": failure.GraphError,
		"dataverse 429": failure.Throttled, "dataverse 500": failure.DataverseError, "dataverse 503": failure.DataverseError, "dataverse 504": failure.DataverseError,
		"powerplatform 429": failure.Throttled, "powerplatform 500": failure.DataverseError, "powerplatform 503": failure.DataverseError, "powerplatform 504": failure.DataverseError,
	}
	got := map[string]bool{}
	for i := 0; i < 400 && len(got) < len(want); i++ {
		var err error
		switch i % 3 {
		case 0:
			_, err = faulty.g.GetUser(ctx, graphsim.MeganUserID)
		case 1:
			_, err = faulty.dv.BusinessUnit(ctx, faulty.instance("sales"), "")
		case 2:
			err = faulty.dv.ForceSync(ctx, faulty.url, graphsim.SalesEnvironmentID, graphsim.MeganUserID)
		}
		var r *failure.Remote
		if !errors.As(err, &r) {
			t.Fatalf("fault %d: %v is no remote failure", i, err)
		}
		key := r.Service + " " + strconv.Itoa(r.Status)
		v := failure.Classify(err)
		if !v.Retryable || v.Reason != want[key] {
			t.Errorf("%s: retryable %v reason %s, want true %s: %v", key, v.Retryable, v.Reason, want[key], err)
		}
		got[key] = true
		seen[r.Code] = true
	}
	if len(got) != len(want) {
		t.Errorf("saw only %v of the injected faults", got)
	}
}

// unreachable are the emulator's error codes that no call guestflow makes
// can produce, each with why: the clients never send what provokes them.
var unreachable = map[string]string{
	"0x80060888":                         "malformed $filter or $select: the Dataverse client builds them from quoted literals and checked GUIDs",
	"NotFound":                           "an unknown path: the clients only call routes that exist",
	"MethodNotAllowed":                   "a method a route does not take",
	"0x80040216":                         "an internal error; only injected faults (counted by their status) and emulator bugs produce it",
	"generalException":                   "same, for Graph",
	"InternalServerError":                "same, for the admin API",
	"MissingApiVersionParameter":         "the Power Platform call always sends api-version",
	"InvalidApiVersionParameter":         "same",
	"InvalidRequestContent":              "ForceSync checks the object id is a GUID before sending",
	"Directory_InvalidSkipToken":         "guestflow never pages with a $skiptoken of its own",
	"ErrorInvalidParameter":              "sendMail always carries a message",
	"RequestBodyRead":                    "the SDK always sends a valid body type",
	"AuthenticationFailed":               "the clients always send a token",
	"ExpiredAuthenticationToken":         "azidentity refreshes tokens before they expire",
	"InvalidAuthenticationTokenTenant":   "tokens come from the configured tenant's authority",
	"InvalidAuthenticationTokenAudience": "each client asks for its service's scope",
	"invalid_scope":                      "the emulator's answer to a scope that is no URL; guestflow's scopes are URLs (invalid_resource is covered, with the same verdict)",
	"RequestEntityTooLarge":              "guestflow's request bodies are far below 4 MB",
	"UnsupportedMediaType":               "the clients send application/json",
	"0x8006088a":                         "an unknown Web API path: the Dataverse client calls routes that exist",
	"0x80040203":                         "covered by the invalid email address; the emulator also answers it to a role of another business unit, which the role step never sends (it looks roles up in the user's business unit)",
	"invalid_tenant":                     "covered with the wrong secret's invalid_client: every Entra refusal is auth_failed (graph/credential.go)",
	"invalid_request":                    "azidentity always sends a well-formed token request",
	"unsupported_grant_type":             "azidentity sends client_credentials",
	"unauthorized_client":                "covered as invalid_client: every Entra refusal is auth_failed",
	"0x80072326":                         "Dataverse's concurrency limit needs 52 requests at once; the 429 verdict is covered by 0x80072322",
}

// TestEveryEmulatorErrorCodeIsCovered reads the emulator's source for the
// error codes it can answer with and fails when one has neither a case
// above nor a reason in unreachable, so a new emulator error cannot go
// unclassified.
func TestEveryEmulatorErrorCodeIsCovered(t *testing.T) {
	// Run the cases first, in this process, to fill seen.
	if len(seen) == 0 {
		t.Skip("run with the verdict tests (go test ./internal/app), which fill in what they saw")
	}
	codes := emulatorCodes(t)
	var missing []string
	for _, c := range codes {
		if !seen[c] && unreachable[c] == "" {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		t.Errorf("emulator error codes with no verdict case and no reason they cannot happen: %s", strings.Join(missing, ", "))
	}
}

// errorCode is the shape of Microsoft's error codes: a name
// (Request_ResourceNotFound, invalid_client) or a hex number (0x80040217).
var errorCode = regexp.MustCompile(`^(0x[0-9a-fA-F]{8}|[A-Za-z][A-Za-z0-9_]*)$`)

// emulatorCodes collects the string literals of the code arguments of the
// emulator's error answers: c.fail(status, code, msg), c.throttled(wait,
// code, msg), s.aadError(w, r, status, name, …), and the codes assigned to
// a variable named code; c.pick(graph, dataverse, bap) gives three.
func emulatorCodes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../graphsim/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("emulator sources: %v %v", files, err)
	}
	set := map[string]bool{}
	add := func(e ast.Expr) {
		ast.Inspect(e, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if v, err := strconv.Unquote(lit.Value); err == nil && errorCode.MatchString(v) {
					set[v] = true
				}
			}
			return true
		})
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				switch {
				case sel.Sel.Name == "fail" && len(n.Args) == 3, sel.Sel.Name == "throttled" && len(n.Args) == 3:
					add(n.Args[1])
				case sel.Sel.Name == "aadError" && len(n.Args) >= 4:
					add(n.Args[3])
				}
			case *ast.AssignStmt:
				for i, l := range n.Lhs {
					if id, ok := l.(*ast.Ident); ok && (id.Name == "code" || id.Name == "errName") && i < len(n.Rhs) {
						add(n.Rhs[i])
					}
				}
			case *ast.ValueSpec:
				for i, id := range n.Names {
					if strings.HasPrefix(id.Name, "codeDataverse") && i < len(n.Values) {
						add(n.Values[i])
					}
				}
			case *ast.CompositeLit:
				// The injected faults' table: {status, graph, dv, bap, text}.
				if len(n.Elts) == 5 {
					for _, el := range n.Elts[1:4] {
						add(el)
					}
				}
			}
			return true
		})
	}
	var out []string
	for c := range set {
		out = append(out, c)
	}
	slices.Sort(out)
	if len(out) < 20 {
		t.Fatalf("found only %d emulator error codes (%v); has the emulator's error helper changed?", len(out), out)
	}
	return out
}
