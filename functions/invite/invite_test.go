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
	"github.com/guestflow/guestflow/pkg/events"
)

// tenant is a directory in memory: enough to count invitations.
type tenant struct {
	users       []directory.User
	invitations int
}

func (d *tenant) FindUserByMail(_ context.Context, address string) ([]directory.User, error) {
	var out []directory.User
	for _, u := range d.users {
		if strings.EqualFold(u.Mail, address) {
			out = append(out, u)
		}
	}
	return out, nil
}

func (d *tenant) GetUser(_ context.Context, id string) (directory.User, error) {
	for _, u := range d.users {
		if u.ID == id {
			return u, nil
		}
	}
	return directory.User{}, errors.New("not found")
}

func (d *tenant) Invite(_ context.Context, email, _, _ string) (directory.Invitation, error) {
	d.invitations++
	users, _ := d.FindUserByMail(context.Background(), email)
	if len(users) == 0 {
		u := directory.User{ID: "guest-1", Mail: email, UserPrincipalName: "ana_fabrikam.com#EXT#@contoso.example", UserType: "Guest"}
		d.users = append(d.users, u)
		users = append(users, u)
	}
	return directory.Invitation{UserID: users[0].ID, RedeemURL: "https://login.example/redeem"}, nil
}

func (d *tenant) AddGroupMember(context.Context, string, string) error { return nil }

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
	in, err := events.NewJoined("onb-1", "test", joined(), time.Now())
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

var instances = map[string]config.Instance{"sales": {URL: "https://sales.example", License: "DYN365_ENTERPRISE_PLAN1", Roles: []string{"Salesperson"}}}

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

func TestKilledBeforeInvitingAnExistingGuestInvitesAgain(t *testing.T) {
	// An existing guest is invited again for a fresh redemption link, and
	// a retry after dying in between cannot tell whether that happened.
	dir := &tenant{users: []directory.User{{ID: "old-guest", Mail: "ana@fabrikam.com", UserPrincipalName: "old#EXT#@contoso.example", UserType: "Guest"}}}
	m := &memo{kept: map[string][]byte{}}
	m.failPut = func(v any) bool { return !v.(found).Inviting && dir.invitations == 1 }
	if _, err := handle(t, New(dir, m, instances)); err == nil {
		t.Fatal("the first attempt did not fail")
	}
	m.failPut = nil
	out, err := handle(t, New(dir, m, instances))
	if err != nil {
		t.Fatal(err)
	}
	if dir.invitations != 2 || out.InviteRedeemURL == "" || !out.ExistingUser || out.UserID != "old-guest" {
		t.Errorf("%d invitations, invited %+v; want a second invitation with a fresh link for the existing guest", dir.invitations, out)
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
