package invite

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/directory"
	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/pkg/events"
)

// tenant is a directory in memory: enough to count invitations.
type tenant struct {
	users       []directory.User
	invitations int
	calls       int // every call, reads included
	groupAdds   int
	inviteErr   error // the answer to the next invitation, once
}

func (d *tenant) FindUserByMail(_ context.Context, address string) ([]directory.User, error) {
	d.calls++
	var out []directory.User
	for _, u := range d.users {
		if strings.EqualFold(u.Mail, address) {
			out = append(out, u)
		}
	}
	return out, nil
}

func (d *tenant) GetUser(_ context.Context, id string) (directory.User, error) {
	d.calls++
	for _, u := range d.users {
		if u.ID == id {
			return u, nil
		}
	}
	return directory.User{}, errors.New("not found")
}

func (d *tenant) Invite(_ context.Context, email, _, _ string) (directory.Invitation, error) {
	d.calls++
	if err := d.inviteErr; err != nil {
		d.inviteErr = nil
		return directory.Invitation{}, err
	}
	d.invitations++
	users, _ := d.FindUserByMail(context.Background(), email)
	if len(users) == 0 {
		u := directory.User{ID: "guest-1", Mail: email, UserPrincipalName: "ana_fabrikam.com#EXT#@contoso.example", UserType: "Guest"}
		d.users = append(d.users, u)
		users = append(users, u)
	}
	return directory.Invitation{UserID: users[0].ID, RedeemURL: "https://login.example/redeem"}, nil
}

func (d *tenant) AddGroupMember(context.Context, string, string) error {
	d.calls++
	d.groupAdds++
	return nil
}

// memo is a memo in memory whose writes can be made to fail, as a worker
// killed before the write would.
type memo struct {
	kept    map[string][]byte
	failPut func(v any) bool
}

func (m *memo) Get(_ context.Context, step, id string, v any) (bool, error) {
	b, ok := m.kept[step+"/"+id]
	if !ok {
		return false, nil
	}
	return true, json.Unmarshal(b, v)
}

func (m *memo) Put(_ context.Context, step, id string, v any) error {
	if m.failPut != nil && m.failPut(v) {
		return errors.New("killed before the memo write")
	}
	b, err := json.Marshal(v)
	m.kept[step+"/"+id] = b
	return err
}

func joined() events.Joined {
	return events.Joined{Email: "ana@fabrikam.com", GivenName: "Ana", Surname: "Silva", UsageLocation: "PT", Instance: "sales"}
}

func handle(t *testing.T, h *Handler) (events.Invited, error) {
	t.Helper()
	return handleJoined(t, h, joined())
}

func handleJoined(t *testing.T, h *Handler, j events.Joined) (events.Invited, error) {
	t.Helper()
	in, err := events.NewJoined("onb-1", "test", j, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	next, err := h.Handle(context.Background(), in)
	if err != nil {
		return events.Invited{}, err
	}
	var out events.Invited
	if err := next.DataAs(&out); err != nil {
		t.Fatal(err)
	}
	return out, nil
}

var instances = func() map[string]config.Instance {
	c := config.Config{Instances: map[string]config.Instance{"sales": {
		URL: "https://sales.example", License: "DYN365_ENTERPRISE_PLAN1", Roles: []string{"Salesperson"}, SecurityGroupID: "group-1",
	}}}
	c.SetDefaults()
	return c.Instances
}()

func TestKilledBetweenInvitationAndMemoInvitesOnce(t *testing.T) {
	dir := &tenant{}
	m := &memo{kept: map[string][]byte{}}
	// The first write of a result (after the invitation) fails, as if the
	// worker died right after Graph answered.
	killed := false
	m.failPut = func(v any) bool {
		if f := v.(found); !f.Inviting && !killed {
			killed = true
			return true
		}
		return false
	}
	if _, err := handle(t, New(dir, m, instances)); err == nil {
		t.Fatal("the first attempt did not fail")
	}
	if dir.invitations != 1 {
		t.Fatalf("%d invitations on the first attempt", dir.invitations)
	}
	out, err := handle(t, New(dir, m, instances))
	if err != nil {
		t.Fatal(err)
	}
	if dir.invitations != 1 {
		t.Errorf("%d invitations after the redelivery, want 1", dir.invitations)
	}
	if out.UserID != "guest-1" || out.UserType != "Guest" || out.ExistingUser {
		t.Errorf("invited %+v, want the new guest-1, not an existing user", out)
	}
	if out.UserPrincipalName == "" {
		t.Error("no user principal name")
	}
}

func TestAnExistingGuestIsNeverInvitedAgain(t *testing.T) {
	dir := &tenant{users: []directory.User{{ID: "old-guest", Mail: "ana@fabrikam.com", UserPrincipalName: "old#EXT#@contoso.example", UserType: "Guest"}}}
	out, err := handle(t, New(dir, &memo{kept: map[string][]byte{}}, instances))
	if err != nil {
		t.Fatal(err)
	}
	if dir.invitations != 0 || out.InviteRedeemURL != "" || !out.ExistingUser || out.UserID != "old-guest" {
		t.Errorf("%d invitations, invited %+v; want the existing guest as found, no invitation", dir.invitations, out)
	}
}

func TestAnInterruptedInvitationWaitsForReplicationBeforeInvitingAgain(t *testing.T) {
	dir := &tenant{}
	m := &memo{kept: map[string][]byte{}}
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	// An earlier attempt marked "inviting" and died; whether its POST
	// went out is unknown, and no user is readable yet.
	b, _ := json.Marshal(found{Email: "ana@fabrikam.com", Inviting: true, InvitingAt: now})
	m.kept["invite/onb-1"] = b
	h := New(dir, m, instances)
	h.now = func() time.Time { return now.Add(10 * time.Second) }
	_, err := handle(t, h)
	if v := failure.Classify(err); !v.Retryable || v.Reason != failure.ReplicationLag || dir.invitations != 0 {
		t.Fatalf("got %+v (%v) and %d invitations; want a replication_lag retry and none", v, err, dir.invitations)
	}
	// Long after the mark, nobody appeared: the invitation was never sent.
	h.now = func() time.Time { return now.Add(readableWithin + time.Second) }
	out, err := handle(t, h)
	if err != nil {
		t.Fatal(err)
	}
	if dir.invitations != 1 || out.ExistingUser || out.InviteRedeemURL == "" {
		t.Errorf("%d invitations, %+v; want one invitation of a new guest", dir.invitations, out)
	}
}

func TestRedeliveryAfterTheMemoInvitesNoOne(t *testing.T) {
	dir := &tenant{}
	m := &memo{kept: map[string][]byte{}}
	first, err := handle(t, New(dir, m, instances))
	if err != nil {
		t.Fatal(err)
	}
	again, err := handle(t, New(dir, m, instances))
	if err != nil {
		t.Fatal(err)
	}
	if dir.invitations != 1 || again.InviteRedeemURL != first.InviteRedeemURL || again.InviteRedeemURL == "" {
		t.Errorf("%d invitations; links %q then %q", dir.invitations, first.InviteRedeemURL, again.InviteRedeemURL)
	}
}

func TestAnEventAsksNoMoreThanTheConfigurationGrants(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(*events.Joined)
		reason string
	}{
		{"a role not allowed", func(j *events.Joined) { j.Roles = []string{"System Administrator"} }, failure.RoleNotAllowed},
		{"one role of several not allowed", func(j *events.Joined) { j.Roles = []string{"Salesperson", "Sales Manager"} }, failure.RoleNotAllowed},
		{"a license not allowed", func(j *events.Joined) { j.License = "DYN365_ENTERPRISE_SALES" }, failure.LicenseNotAllowed},
		{"a redirect off the allowed hosts", func(j *events.Joined) { j.RedirectURL = "https://attacker.example/landing" }, failure.RedirectNotAllowed},
		{"a redirect on a look-alike host", func(j *events.Joined) { j.RedirectURL = "https://sales.example.attacker.example/" }, failure.RedirectNotAllowed},
		{"an unknown instance", func(j *events.Joined) { j.Instance = "attacker" }, failure.UnknownInstance},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, m := &tenant{}, &memo{kept: map[string][]byte{}}
			j := joined()
			tc.edit(&j)
			_, err := handleJoined(t, New(dir, m, instances), j)
			if v := failure.Classify(err); v.Retryable || v.Reason != tc.reason {
				t.Fatalf("got %+v (%v), want the permanent %s", v, err, tc.reason)
			}
			if dir.calls != 0 || len(m.kept) != 0 {
				t.Errorf("%d directory calls and %d memo records before refusing, want none", dir.calls, len(m.kept))
			}
		})
	}
	t.Run("allowed values pass", func(t *testing.T) {
		j := joined()
		j.Roles, j.RedirectURL = []string{"salesperson"}, "https://myapps.microsoft.com/?tenantid=x"
		if _, err := handleJoined(t, New(&tenant{}, &memo{kept: map[string][]byte{}}, instances), j); err != nil {
			t.Fatal(err)
		}
	})
}

func TestMembersAreRefusedUnlessAllowedAndNeverAddedToTheGroup(t *testing.T) {
	member := directory.User{ID: "member-1", Mail: "ana@fabrikam.com", UserPrincipalName: "ana@contoso.example", UserType: "Member"}
	dir, m := &tenant{users: []directory.User{member}}, &memo{kept: map[string][]byte{}}
	_, err := handle(t, New(dir, m, instances))
	if v := failure.Classify(err); v.Retryable || v.Reason != failure.MemberNotAllowed || !strings.Contains(err.Error(), "instances.sales.allowMembers") {
		t.Fatalf("got %+v (%v), want the permanent member_not_allowed naming the key", v, err)
	}
	if dir.invitations != 0 || dir.groupAdds != 0 || len(m.kept) != 0 {
		t.Errorf("refused member: %d invitations, %d group adds, %d memo records", dir.invitations, dir.groupAdds, len(m.kept))
	}

	allowing := map[string]config.Instance{"sales": instances["sales"]}
	in := allowing["sales"]
	in.AllowMembers = true
	allowing["sales"] = in
	out, err := handle(t, New(dir, m, allowing))
	if err != nil {
		t.Fatal(err)
	}
	if out.UserID != "member-1" || out.UserType != "Member" || dir.invitations != 0 || dir.groupAdds != 0 {
		t.Errorf("allowed member: %+v, %d invitations, %d group adds; want member-1 as found, nothing written", out, dir.invitations, dir.groupAdds)
	}
	// Taking allowMembers back stops the onboarding on its next delivery.
	if _, err := handle(t, New(dir, m, instances)); failure.Classify(err).Reason != failure.MemberNotAllowed {
		t.Errorf("after allowMembers was taken back: %v", err)
	}
}

func TestAnOnboardingIDBelongsToOneAddress(t *testing.T) {
	dir, m := &tenant{}, &memo{kept: map[string][]byte{}}
	first, err := handle(t, New(dir, m, instances))
	if err != nil {
		t.Fatal(err)
	}
	before := string(m.kept["invite/onb-1"])
	j := joined()
	j.Email = "bob@fabrikam.com"
	_, err = handleJoined(t, New(dir, m, instances), j)
	if v := failure.Classify(err); v.Retryable || v.Reason != failure.OnboardingIDReused {
		t.Fatalf("got %+v (%v), want the permanent onboarding_id_reused", v, err)
	}
	if dir.invitations != 1 || string(m.kept["invite/onb-1"]) != before {
		t.Errorf("the reuse invited (%d invitations) or changed the first record:\n%s\n%s", dir.invitations, before, m.kept["invite/onb-1"])
	}
	if first.UserID != "guest-1" {
		t.Errorf("first onboarding: %+v", first)
	}
}

func TestAnInvitationGraphRefusedIsRetriedAtOnce(t *testing.T) {
	dir := &tenant{inviteErr: &failure.Remote{Service: "graph", Op: "invite", Status: 503}}
	m := &memo{kept: map[string][]byte{}}
	if _, err := handle(t, New(dir, m, instances)); err == nil {
		t.Fatal("the refused invitation did not fail the attempt")
	}
	// Graph answered: nothing to wait for, the retry invites.
	out, err := handle(t, New(dir, m, instances))
	if err != nil {
		t.Fatal(err)
	}
	if dir.invitations != 1 || out.UserID != "guest-1" {
		t.Errorf("%d invitations, %+v", dir.invitations, out)
	}
}
