package role

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/dataverse"
	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/identity"
	"github.com/guestflow/guestflow/pkg/events"
)

const (
	instanceURL = "https://contoso.crm.dynamics.com"
	buID        = "0b0b0b0b-0000-4000-8000-000000000001"
	roleID      = "0c0c0c0c-0000-4000-8000-000000000001"
)

// environment is a Dataverse environment with one business unit and one
// role, which counts the step's reads and can refuse associations.
type environment struct {
	bus, roles, assocs int
	hasRole            bool
	refuse             error
	granted            map[string]bool
}

func (e *environment) FindSystemUser(_ context.Context, _, objectID string) (*dataverse.SystemUser, error) {
	return &dataverse.SystemUser{ID: "su-" + objectID, AADObjectID: objectID}, nil
}

func (e *environment) BusinessUnit(context.Context, string, string) (string, error) {
	e.bus++
	return buID, nil
}

func (e *environment) FindRole(_ context.Context, _, name, _ string) (*dataverse.Role, error) {
	e.roles++
	if !e.hasRole {
		return nil, nil
	}
	return &dataverse.Role{ID: roleID, Name: name, BusinessUnitID: buID}, nil
}

func (e *environment) UserRoles(_ context.Context, _, userID string) ([]dataverse.Role, error) {
	if e.granted[userID] {
		return []dataverse.Role{{ID: roleID, Name: "Salesperson"}}, nil
	}
	return nil, nil
}

func (e *environment) AssociateRole(_ context.Context, _, userID, _ string) error {
	e.assocs++
	if e.refuse != nil {
		return e.refuse
	}
	if e.granted == nil {
		e.granted = map[string]bool{}
	}
	e.granted[userID] = true
	return nil
}

func (e *environment) SetInternalEmail(context.Context, string, string, string) error { return nil }

func (e *environment) ForceSync(context.Context, string, string, string) error { return nil }

// admit admits every event for one instance.
type admit struct{}

func (admit) Admit(_ context.Context, _ string, d events.Invited) (config.Instance, identity.User, error) {
	return config.Instance{URL: instanceURL}, identity.User{ID: d.UserID, Type: "Guest"}, nil
}

// onboard runs the step for the i-th guest.
func onboard(t *testing.T, h *Handler, i int) error {
	t.Helper()
	d := events.Licensed{Invited: events.Invited{
		Joined: events.Joined{Email: fmt.Sprintf("guest%d@fabrikam.com", i), GivenName: "Ana", Surname: "Silva", DisplayName: "Ana Silva",
			UsageLocation: "PT", Instance: "sales", License: "DYN365_ENTERPRISE_SALES", Roles: []string{"Salesperson"}},
		UserID: fmt.Sprintf("5e4d3c2b-0000-4000-8000-%012d", i), UserType: "Guest",
	}}
	j, err := events.NewJoined(fmt.Sprintf("ob-%d", i), "hr/test", d.Joined, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	in, err := events.Next(j, "license", events.TypeLicensed, d, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Handle(context.Background(), in)
	return err
}

// TestNamesAreLookedUpOnce: onboardings of one instance share the business
// unit and role they found, instead of reading them again on every
// delivery.
func TestNamesAreLookedUpOnce(t *testing.T) {
	env := &environment{hasRole: true}
	h := New(env, admit{}, "", 0)
	for i := range 3 {
		if err := onboard(t, h, i); err != nil {
			t.Fatal(err)
		}
	}
	if env.bus != 1 || env.roles != 1 || env.assocs != 3 {
		t.Errorf("%d business unit and %d role lookups for %d associations, want 1, 1 and 3", env.bus, env.roles, env.assocs)
	}
}

// TestAMissingRoleIsAskedAgain: a role that was not there is not
// remembered as missing, so the replay after it was created finds it.
func TestAMissingRoleIsAskedAgain(t *testing.T) {
	env := &environment{}
	h := New(env, admit{}, "", 0)
	if err := onboard(t, h, 1); failure.Classify(err).Reason != failure.UnknownRole {
		t.Fatalf("got %v, want unknown_role", err)
	}
	env.hasRole = true
	if err := onboard(t, h, 1); err != nil {
		t.Fatalf("the replay after the role was created: %v", err)
	}
	if env.roles != 2 {
		t.Errorf("%d role lookups, want 2", env.roles)
	}
}

// TestARefusedAssociationForgetsTheRole: a role Dataverse refuses to
// associate may be gone or replaced, so the retry looks it up again.
func TestARefusedAssociationForgetsTheRole(t *testing.T) {
	env := &environment{hasRole: true, refuse: errors.New("role not found")}
	h := New(env, admit{}, "", 0)
	if err := onboard(t, h, 1); err == nil {
		t.Fatal("the refused association was not reported")
	}
	env.refuse = nil
	if err := onboard(t, h, 1); err != nil {
		t.Fatal(err)
	}
	if env.roles != 2 {
		t.Errorf("%d role lookups, want 2: the refused role was trusted again", env.roles)
	}
}
