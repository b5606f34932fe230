package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/graphsim"
	"github.com/guestflow/guestflow/pkg/events"
)

// These tests play an attacker with publish rights on NATS: an HR
// connector gone wrong, a compromised integration, a typo in a bulk file.
// Whatever an event says, the configuration decides what is granted, and
// every step checks the user it acts on.

// publishAs publishes data as an event of type typ on its subject, as
// anyone who may publish could, with no message id for the broker to
// deduplicate.
func (s *system) publishAs(typ, id, onboarding, email string, data any) {
	s.t.Helper()
	ev := event.New()
	ev.SetID(id)
	ev.SetSource("attacker")
	ev.SetType(typ)
	ev.SetSubject(email)
	ev.SetExtension(events.ExtOnboardingID, onboarding)
	if err := ev.SetData(event.ApplicationJSON, data); err != nil {
		s.t.Fatal(err)
	}
	header, body, err := events.Encode(ev)
	if err != nil {
		s.t.Fatal(err)
	}
	subject, _ := events.Subject(typ)
	if _, err := s.js.PublishMsg(s.t.Context(), &nats.Msg{Subject: subject, Header: nats.Header(header), Data: body}); err != nil {
		s.t.Fatal(err)
	}
}

// user returns the emulator's user with address mail.
func (s *system) user(mail string) (graphsim.User, bool) {
	for _, u := range s.sim.Users() {
		if strings.EqualFold(u.Mail, mail) {
			return u, true
		}
	}
	return graphsim.User{}, false
}

// rolesOf returns the roles user id holds in instance.
func (s *system) rolesOf(instance, id string) []string {
	s.t.Helper()
	sus, _ := s.sim.SystemUsers(instance)
	for _, su := range sus {
		if su.AzureActiveDirectoryObjectID == id {
			return su.Roles
		}
	}
	return nil
}

func TestSystemAdministratorIsNotGrantedBecauseAnEventAsks(t *testing.T) {
	s := start(t, graphsim.Options{SyncDelay: 100 * time.Millisecond})
	j := sales("eve@attacker.example")
	j.Roles = []string{"Salesperson", "System Administrator"}
	s.publishJoined("admin-1", j)
	checkDeadLetter(t, s.awaitDeadLetter("invite"), "invite", failure.RoleNotAllowed, "admin-1",
		`"System Administrator"`, "instances.sales.allowedRoles")
	if st := s.sim.Stats(); st.Requests != 0 {
		t.Errorf("%d calls to Microsoft before refusing: %v", st.Requests, st.Calls)
	}
	if _, ok := s.user("eve@attacker.example"); ok {
		t.Error("the refused event created a guest")
	}
}

func TestAWildcardNeverReachesSystemAdministrator(t *testing.T) {
	s := start(t, graphsim.Options{SyncDelay: 100 * time.Millisecond}, func(su *setup) {
		su.configure = func(c *config.Config, _ *graphsim.Sim) {
			in := c.Instances["sales"]
			in.AllowedRoles = []string{config.AnyRole}
			c.Instances["sales"] = in
		}
	})
	manager := sales("mo@partner.example")
	manager.Roles = []string{"Sales Manager"}
	s.publishJoined("wild-1", manager)
	admin := sales("eve@attacker.example")
	admin.Roles = []string{"System Administrator"}
	s.publishJoined("wild-2", admin)

	d := onboardedData(t, s.await("wild-1")["wild-1"])
	if got := s.rolesOf("sales", d.UserID); !slices.Equal(got, []string{"Sales Manager"}) {
		t.Errorf("a role the wildcard allows: %v", got)
	}
	checkDeadLetter(t, s.awaitDeadLetter("role"), "role", failure.RoleNotAllowed, "wild-2",
		"System Administrator privilege", "instances.sales.allowedRoles")
	eve, _ := s.user("eve@attacker.example")
	if got := s.rolesOf("sales", eve.ID); len(got) != 0 {
		t.Errorf("the wildcard granted %v", got)
	}
}

func TestAMemberIsRefusedAndUntouched(t *testing.T) {
	s := start(t, graphsim.Options{SyncDelay: 100 * time.Millisecond})
	j := events.Joined{Email: graphsim.MeganAddress, GivenName: "Eve", Surname: "Attacker", UsageLocation: "KP", Instance: "sales"}
	s.publishJoined("member-1", j)
	checkDeadLetter(t, s.awaitDeadLetter("invite"), "invite", failure.MemberNotAllowed, "member-1",
		graphsim.MeganAddress, "instances.sales.allowMembers")
	megan, _ := s.user(graphsim.MeganAddress)
	if megan.GivenName != "Megan" || megan.UsageLocation != "US" || len(megan.Groups) != 0 || len(megan.AssignedLicenses) != 0 {
		t.Errorf("a refused member was changed: %+v", megan)
	}
	if n := s.sim.Stats().Writes; n != 0 {
		t.Errorf("%d identity writes for a refused member", n)
	}
}

func TestALicensedEventForAnotherPersonGrantsNothing(t *testing.T) {
	s := start(t, graphsim.Options{SyncDelay: 100 * time.Millisecond})
	s.publishJoined("vic-1", sales("vic@partner.example"))
	s.publishJoined("eve-1", sales("eve@attacker.example"))
	got := s.await("vic-1", "eve-1")
	vic, eve := onboardedData(t, got["vic-1"]), onboardedData(t, got["eve-1"])

	// Eve's own onboarding, pointed at Vic.
	forged := eve.Licensed
	forged.UserID, forged.Roles = vic.UserID, []string{"Sales Manager"}
	s.publishAs(events.TypeLicensed, "forged-1", "eve-1", eve.Email, forged)
	checkDeadLetter(t, s.awaitDeadLetter("role"), "role", failure.IdentityMismatch, "eve-1", vic.UserID)

	// An onboarding nobody started, for Eve's address and Vic's user.
	s.publishAs(events.TypeLicensed, "forged-2", "made-up-1", eve.Email, forged)
	s.settle()
	if n := s.count("GUESTFLOW_DLQ", "guestflow.dlq.role"); n != 2 {
		t.Errorf("%d role dead letters, want 2: %v", n, s.deadLetters())
	}
	if got := s.rolesOf("sales", vic.UserID); !slices.Equal(got, []string{"Salesperson"}) {
		t.Errorf("Vic's roles after the forged events: %v", got)
	}
}

func TestARoleAssignedEventCannotMailAnAttackersLink(t *testing.T) {
	s := start(t, graphsim.Options{SyncDelay: 100 * time.Millisecond})
	s.publishJoined("vic-1", sales("vic@partner.example"))
	vic := onboardedData(t, s.await("vic-1")["vic-1"])
	mailed := len(s.sim.Mails())

	forged := vic.RoleAssigned
	forged.Instance, forged.RedirectURL, forged.InviteRedeemURL = "attacker", "https://attacker.example/", "https://attacker.example/redeem"
	s.publishAs(events.TypeRoleAssigned, "forged-1", "made-up-1", vic.Email, forged)
	checkDeadLetter(t, s.awaitDeadLetter("notify"), "notify", failure.UnknownInstance, "made-up-1", `"attacker"`)

	forged = vic.RoleAssigned
	forged.InviteRedeemURL = "https://attacker.example/redeem"
	s.publishAs(events.TypeRoleAssigned, "forged-2", "made-up-2", vic.Email, forged)
	forged.RedirectURL = "https://attacker.example/"
	s.publishAs(events.TypeRoleAssigned, "forged-3", "made-up-3", vic.Email, forged)
	s.settle()
	if n := s.count("GUESTFLOW_DLQ", "guestflow.dlq.notify"); n != 3 {
		t.Errorf("%d notify dead letters, want 3: %v", n, s.deadLetters())
	}
	for _, m := range s.sim.Mails() {
		if strings.Contains(m.Body, "attacker.example") {
			t.Errorf("mailed an attacker's link:\n%s", m.Body)
		}
	}
	if n := len(s.sim.Mails()); n != mailed {
		t.Errorf("%d mails after the forged events, want %d", n, mailed)
	}
}

func TestAReusedOnboardingIDChangesNothingOfTheFirstPerson(t *testing.T) {
	s := start(t, graphsim.Options{SyncDelay: 100 * time.Millisecond})
	s.publishJoined("reuse-1", sales("ana@fabrikam.com"))
	s.await("reuse-1")
	before, _ := s.user("ana@fabrikam.com")

	// The same id for another person, as an HR system that recycles ids
	// would publish it once the duplicate window has passed.
	bob := sales("bob@fabrikam.com")
	bob.GivenName, bob.Surname = "Bob", "Stone"
	s.publishJoined("reuse-1", bob)
	checkDeadLetter(t, s.awaitDeadLetter("invite"), "invite", failure.OnboardingIDReused, "reuse-1", "new id")
	after, _ := s.user("ana@fabrikam.com")
	if after.GivenName != before.GivenName || after.DisplayName != before.DisplayName {
		t.Errorf("the first person changed: %+v -> %+v", before, after)
	}
	if _, ok := s.user("bob@fabrikam.com"); ok || s.sim.Stats().Invitations != 1 {
		t.Errorf("the reused id invited Bob (%d invitations)", s.sim.Stats().Invitations)
	}
	if n := s.count("GUESTFLOW", events.SubjectOnboarded); n != 1 {
		t.Errorf("%d onboarded events, want Ana's alone", n)
	}
}
