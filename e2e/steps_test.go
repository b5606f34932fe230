package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/dlq"
	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/graphsim"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// Each test here drives one of Microsoft's preconditions or failures through
// the whole system — the real SDK paths against the emulator over HTTPS —
// and asserts its exact outcome: the event that comes out, or the dead
// letter with its reason and a message that says what to fix.

func sales(email string) events.Joined {
	return events.Joined{Email: email, GivenName: "Ana", Surname: "Silva", UsageLocation: "PT", Instance: "sales"}
}

// checkDeadLetter asserts the contract's headers of a dead letter.
func checkDeadLetter(t *testing.T, dl deadLetter, step, reason, onboarding string, errorHas ...string) {
	t.Helper()
	h := dl.Header
	if h.Get(worker.HeaderStep) != step || h.Get(worker.HeaderReason) != reason || h.Get(worker.HeaderOnboardingID) != onboarding {
		t.Errorf("dead letter: step %q reason %q onboarding %q, want %s %s %s",
			h.Get(worker.HeaderStep), h.Get(worker.HeaderReason), h.Get(worker.HeaderOnboardingID), step, reason, onboarding)
	}
	if h.Get(worker.HeaderAttempts) == "" || h.Get(worker.HeaderOriginalSubject) == "" || h.Get(worker.HeaderFailedAt) == "" {
		t.Errorf("dead letter lacks attempts / original subject / failed-at: %v", h)
	}
	for _, want := range errorHas {
		if !strings.Contains(h.Get(worker.HeaderError), want) {
			t.Errorf("Guestflow-Error %q lacks %q", h.Get(worker.HeaderError), want)
		}
	}
}

type deadLetter = *jetstream.RawStreamMsg

func TestNoFreeSeatIsDeadLetteredAndReplaySucceedsOnceSeatsExist(t *testing.T) {
	s := start(t, graphsim.Options{SyncDelay: 100 * time.Millisecond})
	if _, err := s.sim.SetSeats("DYN365_ENTERPRISE_SALES", 0); err != nil {
		t.Fatal(err)
	}
	s.publishJoined("seat-1", sales("ana@fabrikam.com"))
	dl := s.awaitDeadLetter("license")
	checkDeadLetter(t, dl, "license", failure.NoLicenseSeats, "seat-1", "DYN365_ENTERPRISE_SALES", "replay")
	if dl.Header.Get(worker.HeaderAttempts) != "1" || dl.Header.Get(worker.HeaderOriginalSubject) != events.SubjectInvited {
		t.Errorf("a permanent failure is dead-lettered at once from its subject: %v", dl.Header)
	}
	if _, err := s.sim.SetSeats("DYN365_ENTERPRISE_SALES", 5); err != nil {
		t.Fatal(err)
	}
	if err := dlq.Replay(t.Context(), s.js, dl.Sequence); err != nil {
		t.Fatal(err)
	}
	d := onboardedData(t, s.await("seat-1")["seat-1"])
	if d.SkuPartNumber != "DYN365_ENTERPRISE_SALES" {
		t.Errorf("onboarded with %q", d.SkuPartNumber)
	}
	if n := s.count(worker.DLQStream, worker.DLQPrefix+"license"); n != 0 {
		t.Errorf("the replayed dead letter was not removed (%d left)", n)
	}
}

func TestUnknownSKU(t *testing.T) {
	// Allowed, so that the event gets past the invite step's allow-list
	// to the tenant, which does not subscribe to it.
	s := start(t, graphsim.Options{}, func(su *setup) {
		su.configure = func(c *config.Config, _ *graphsim.Sim) {
			in := c.Instances["sales"]
			in.AllowedLicenses = []string{in.License, "DYN365_NO_SUCH_PLAN"}
			c.Instances["sales"] = in
		}
	})
	j := sales("ana@fabrikam.com")
	j.License = "DYN365_NO_SUCH_PLAN"
	s.publishJoined("sku-1", j)
	checkDeadLetter(t, s.awaitDeadLetter("license"), "license", failure.UnknownSKU, "sku-1",
		`"DYN365_NO_SUCH_PLAN"`, "DYN365_ENTERPRISE_SALES")
}

func TestUnknownRole(t *testing.T) {
	// Allowed, so that the event gets past the invite step's allow-list
	// to the environment, which does not have it.
	s := start(t, graphsim.Options{SyncDelay: 100 * time.Millisecond}, func(su *setup) {
		su.configure = func(c *config.Config, _ *graphsim.Sim) {
			in := c.Instances["sales"]
			in.AllowedRoles = append(in.AllowedRoles, "Chief Vibes Officer")
			c.Instances["sales"] = in
		}
	})
	j := sales("ana@fabrikam.com")
	j.Roles = []string{"Salesperson", "Chief Vibes Officer"}
	s.publishJoined("role-1", j)
	checkDeadLetter(t, s.awaitDeadLetter("role"), "role", failure.UnknownRole, "role-1", `"Chief Vibes Officer"`)
}

func TestUnknownInstance(t *testing.T) {
	s := start(t, graphsim.Options{})
	j := sales("ana@fabrikam.com")
	j.Instance = "nowhere"
	s.publishJoined("inst-1", j)
	checkDeadLetter(t, s.awaitDeadLetter("invite"), "invite", failure.UnknownInstance, "inst-1", `"nowhere"`, "legacy, sales, service")
	if s.sim.Stats().Invitations != 0 {
		t.Error("an event for an unknown instance invited someone")
	}
}

func TestInvalidEventIsDeadLetteredAtOnceAndTheWorkerGoesOn(t *testing.T) {
	s := start(t, graphsim.Options{SyncDelay: 100 * time.Millisecond})
	bad := sales("ana@fabrikam.com")
	bad.UsageLocation = "UK"
	s.publishJoined("bad-1", bad)
	dl := s.awaitDeadLetter("invite")
	checkDeadLetter(t, dl, "invite", failure.InvalidEvent, "bad-1", "usageLocation", `"GB"`)
	if dl.Header.Get(worker.HeaderAttempts) != "1" {
		t.Errorf("an invalid event must be dead-lettered on its first delivery, took %s", dl.Header.Get(worker.HeaderAttempts))
	}
	s.publishJoined("good-1", sales("ana@fabrikam.com"))
	s.await("good-1")
}

func TestMissingSecurityGroup(t *testing.T) {
	missing := uuid.NewString()
	s := start(t, graphsim.Options{}, func(su *setup) {
		su.configure = func(c *config.Config, _ *graphsim.Sim) {
			in := c.Instances["sales"]
			in.SecurityGroupID = missing
			c.Instances["sales"] = in
		}
	})
	s.publishJoined("grp-1", sales("ana@fabrikam.com"))
	checkDeadLetter(t, s.awaitDeadLetter("invite"), "invite", failure.UnknownGroup, "grp-1", missing, "securityGroupId")
}

func TestUserNeverSyncedIsDeadLetteredAtTheDeadline(t *testing.T) {
	s := start(t, graphsim.Options{SyncDelay: time.Hour}, func(su *setup) { su.steps.SyncDeadline = 2 * time.Second })
	s.publishJoined("sync-1", sales("ana@fabrikam.com"))
	dl := s.awaitDeadLetter("role")
	checkDeadLetter(t, dl, "role", failure.UserNotSynced, "sync-1", "not in sales's systemusers yet")
	if dl.Header.Get(worker.HeaderAttempts) == "1" {
		t.Error("the sync wait must be retried until its deadline")
	}
}

func TestForcedSyncSkipsTheWait(t *testing.T) {
	s := start(t, graphsim.Options{SyncDelay: time.Hour}, func(su *setup) {
		su.steps.SyncDeadline = 30 * time.Second
		su.configure = func(c *config.Config, sim *graphsim.Sim) {
			for _, name := range []string{"sales", "service"} {
				in := c.Instances[name]
				in.EnvironmentID = sim.EnvironmentID(name)
				c.Instances[name] = in
			}
		}
	})
	s.publishJoined("force-1", sales("ana@fabrikam.com"))
	svc := sales("kenji@adatum.example")
	svc.Instance = "service"
	s.publishJoined("force-2", svc)
	s.await("force-1", "force-2")
	const route = "POST /providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/{id}/addUser"
	if n := s.calls(route, 200); n < 2 {
		t.Errorf("forced sync called successfully %d times, want one per user", n)
	}
}

func TestReplicationLagIsRetried(t *testing.T) {
	s := start(t, graphsim.Options{SyncDelay: 100 * time.Millisecond, ReplicationLag: 1500 * time.Millisecond})
	s.publishJoined("lag-1", sales("ana@fabrikam.com"))
	s.await("lag-1")
	if s.calls("POST /v1.0/groups/{id}/members/$ref", 204) != 1 {
		t.Errorf("group member added %d times", s.calls("POST /v1.0/groups/{id}/members/$ref", 204))
	}
	lagged := s.calls("POST /v1.0/groups/{id}/members/$ref", 400) + s.calls("GET /v1.0/users/{id}", 404)
	if lagged == 0 {
		t.Errorf("the emulator's replication lag was never hit: %v", s.sim.Stats().Calls)
	}
}

func TestDataverseServiceProtectionIsWaitedOut(t *testing.T) {
	// A role attempt makes up to five Dataverse calls, so two onboardings
	// into sales meet a limit of six per two seconds, one at a time. (A
	// limit below one attempt's calls could never be met: an attempt starts
	// over after each 429.)
	s := start(t, graphsim.Options{SyncDelay: 100 * time.Millisecond,
		DataverseLimit: graphsim.Limit{N: 6, Per: 2 * time.Second}, DataverseConcurrency: 1})
	s.publishJoined("dvlimit-1", sales("ana@fabrikam.com"))
	s.publishJoined("dvlimit-2", sales("kenji@adatum.example"))
	s.await("dvlimit-1", "dvlimit-2")
	s.settle()
	if dl := s.deadLetters(); len(dl) != 0 {
		t.Errorf("dead letters: %v", dl)
	}
	if st := s.sim.Stats(); st.Throttled == 0 {
		t.Errorf("Dataverse never throttled: %v", st.Calls)
	}
	if n := s.calls("POST /instances/{instance}/api/data/v9.2/systemusers({id})/systemuserroles_association/$ref", 204); n != 2 {
		t.Errorf("%d role associations, want 2", n)
	}
}

func TestExistingGuestIsNeverInvitedAgain(t *testing.T) {
	s := start(t, graphsim.Options{SyncDelay: 100 * time.Millisecond})
	s.publishJoined("again-1", sales("ana@fabrikam.com"))
	first := onboardedData(t, s.await("again-1")["again-1"])
	s.publishJoined("again-2", sales("ANA@Fabrikam.com"))
	second := onboardedData(t, s.await("again-2")["again-2"])
	if first.ExistingUser || !second.ExistingUser || first.UserID != second.UserID {
		t.Errorf("existingUser %v then %v, users %s / %s", first.ExistingUser, second.ExistingUser, first.UserID, second.UserID)
	}
	if first.InviteRedeemURL == "" || second.InviteRedeemURL != "" {
		t.Errorf("redemption links %q then %q; want one for the invitation and none for the returning guest", first.InviteRedeemURL, second.InviteRedeemURL)
	}
	// Ana never redeemed: the second mail says that signing in does.
	mails := s.sim.Mails()
	if len(mails) != 2 || strings.Contains(mails[1].Body, "/_sim/redeem/") || !strings.Contains(mails[1].Body, "signing in at the link below accepts it") {
		t.Errorf("the returning guest's mail:\n%v", mails)
	}
	n := 0
	for _, u := range s.sim.Users() {
		if strings.EqualFold(u.Mail, "ana@fabrikam.com") {
			n++
			if len(u.Groups) != 1 || len(u.AssignedLicenses) != 1 {
				t.Errorf("groups %v, licenses %v", u.Groups, u.AssignedLicenses)
			}
		}
	}
	if n != 1 || s.sim.Stats().Invitations != 1 || s.calls("POST /v1.0/invitations", 201) != 1 {
		t.Errorf("%d users and %d invitations for one address onboarded twice, want 1 and 1", n, s.sim.Stats().Invitations)
	}
	if s.calls("POST /v1.0/users/{id}/assignLicense", 200) != 1 ||
		s.calls("POST /instances/{instance}/api/data/v9.2/systemusers({id})/systemuserroles_association/$ref", 204) != 1 {
		t.Errorf("license or role assigned twice: %v", s.sim.Stats().Calls)
	}
}

func TestAllowedMemberIsNotInvitedNorChanged(t *testing.T) {
	s := start(t, graphsim.Options{SyncDelay: 100 * time.Millisecond}, func(su *setup) {
		su.configure = func(c *config.Config, _ *graphsim.Sim) {
			in := c.Instances["service"]
			in.AllowMembers = true
			c.Instances["service"] = in
		}
	})
	// Megan is a member; the second address is one of her otherMails. The
	// names and location in the events are not hers, and must not become
	// hers: a member's profile is the organisation's.
	for id, addr := range map[string]string{"member-1": graphsim.MeganAddress, "member-2": "Megan@Fabrikam.example"} {
		j := events.Joined{Email: addr, GivenName: "Meg", Surname: "Renamed", UsageLocation: "PT", Instance: "service"}
		s.publishJoined(id, j)
	}
	for id, ev := range s.await("member-1", "member-2") {
		d := onboardedData(t, ev)
		if d.UserID != graphsim.MeganUserID || d.UserType != "Member" || !d.ExistingUser || d.InviteRedeemURL != "" {
			t.Errorf("%s: %+v", id, d.Invited)
		}
	}
	if n := s.sim.Stats().Invitations; n != 0 {
		t.Errorf("a member was invited %d times", n)
	}
	megan, _ := s.user(graphsim.MeganAddress)
	if megan.GivenName != "Megan" || megan.Surname != "Bowen" || megan.UsageLocation != "US" || s.calls("PATCH /v1.0/users/{id}", 204) != 0 {
		t.Errorf("a member's profile was changed: %+v", megan)
	}
	if !slices.Equal(megan.AssignedLicenses, []string{"DYN365_ENTERPRISE_CUSTOMER_SERVICE"}) {
		t.Errorf("member's licenses: %v", megan.AssignedLicenses)
	}
	for _, m := range s.sim.Mails() {
		if strings.Contains(m.Body, "redeem") || strings.Contains(m.Body, "accept your invitation") {
			t.Errorf("a member's mail offers an invitation:\n%s", m.Body)
		}
	}
}

func TestSendEmailFalseOnboardsWithoutMail(t *testing.T) {
	s := start(t, graphsim.Options{SyncDelay: 100 * time.Millisecond})
	j := sales("ana@fabrikam.com")
	no := false
	j.SendEmail = &no
	s.publishJoined("quiet-1", j)
	if d := onboardedData(t, s.await("quiet-1")["quiet-1"]); d.NotifiedAt != "" {
		t.Errorf("notifiedAt %q without a mail", d.NotifiedAt)
	}
	if n := len(s.sim.Mails()); n != 0 {
		t.Errorf("%d mails sent with sendEmail false", n)
	}
}

func TestWrongSecretIsAuthFailed(t *testing.T) {
	s := start(t, graphsim.Options{}, func(su *setup) { su.credentials.ClientSecret = "not-the-secret" })
	s.publishJoined("auth-1", sales("ana@fabrikam.com"))
	dl := s.awaitDeadLetter("invite")
	checkDeadLetter(t, dl, "invite", failure.AuthFailed, "auth-1")
	if dl.Header.Get(worker.HeaderHTTPStatus) != "401" {
		t.Errorf("Guestflow-Http-Status %q, want 401", dl.Header.Get(worker.HeaderHTTPStatus))
	}
}

// TestDeterministicFailuresAreDeadLetteredAtOnce drives the failures that
// fail the same way every time through the whole system: each is
// dead-lettered on its first attempt, with a reason of its own and an
// error that names the configuration key to fix, instead of being retried
// for minutes and ending as attempts_exhausted.
func TestDeterministicFailuresAreDeadLetteredAtOnce(t *testing.T) {
	for _, c := range []struct {
		name, step, reason string
		configure          func(c *config.Config)
		errorHas           []string
	}{
		{"a business unit that does not exist", "role", failure.UnknownBusinessUnit,
			func(c *config.Config) {
				in := c.Instances["sales"]
				in.BusinessUnit = "Nowhere"
				c.Instances["sales"] = in
			},
			[]string{`"Nowhere"`, "instances.sales.businessUnit", "replay"}},
		{"an environment that does not exist", "role", failure.InvalidConfig,
			func(c *config.Config) {
				in := c.Instances["sales"]
				in.EnvironmentID = uuid.NewString()
				c.Instances["sales"] = in
			},
			[]string{"EnvironmentNotFound", "instances.sales.environmentId", "replay"}},
		{"a sender without a mailbox", "notify", failure.InvalidConfig,
			func(c *config.Config) { c.Notify.Sender = "nobody@" + graphsim.TenantDomain },
			[]string{"ErrorInvalidUser", "notify.sender", "replay"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := start(t, graphsim.Options{SyncDelay: 100 * time.Millisecond}, func(su *setup) {
				su.configure = func(cfg *config.Config, _ *graphsim.Sim) { c.configure(cfg) }
			})
			s.publishJoined("det-1", sales("ana@fabrikam.com"))
			dl := s.awaitDeadLetter(c.step)
			checkDeadLetter(t, dl, c.step, c.reason, "det-1", c.errorHas...)
			if got := dl.Header.Get(worker.HeaderAttempts); got != "1" {
				t.Errorf("dead-lettered after %s deliveries, want the first", got)
			}
		})
	}
}
