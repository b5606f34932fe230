package timeline_test

import (
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/guestflow/guestflow/internal/dlq"
	"github.com/guestflow/guestflow/internal/timeline"
	"github.com/guestflow/guestflow/pkg/events"
)

func TestStatusBuild(t *testing.T) {
	ana := flow(t, "ob-1", "ana@fabrikam.com", 5)
	for _, tc := range []struct {
		name        string
		recs        []timeline.Record
		letters     []dlq.Letter
		wantSteps   []string
		wantStatus  string
		wantStep    string
		wantSummary string
	}{{
		name:        "onboarded",
		recs:        records(ana...),
		wantSteps:   []string{"joined", "invite", "license", "role", "notify"},
		wantStatus:  timeline.Onboarded,
		wantSummary: "onboarded",
	}, {
		name:        "waiting for the license step",
		recs:        records(ana[:2]...),
		wantSteps:   []string{"joined", "invite"},
		wantStatus:  timeline.Waiting,
		wantStep:    "license",
		wantSummary: "waiting at license",
	}, {
		name:        "dead-lettered at license",
		recs:        records(ana[:2]...),
		letters:     []dlq.Letter{deadLetter(7, "license", "no_license_seats", ana[1], true)},
		wantSteps:   []string{"joined", "invite"},
		wantStatus:  timeline.DeadLettered,
		wantStep:    "license",
		wantSummary: "dead-lettered at license: replay with guestflow dlq replay 7",
	}, {
		name:        "an invalid event is not worth a replay",
		recs:        records(ana[:1]...),
		letters:     []dlq.Letter{deadLetter(3, "invite", "invalid_event", ana[0], true)},
		wantSteps:   []string{"joined"},
		wantStatus:  timeline.DeadLettered,
		wantStep:    "invite",
		wantSummary: "dead-lettered at invite: the event is invalid, so a replay fails again; publish a corrected one, then remove this with guestflow dlq purge 3",
	}, {
		name:        "only the dead letter is left once the events expired",
		letters:     []dlq.Letter{deadLetter(2, "license", "no_license_seats", ana[1], false)},
		wantSteps:   nil,
		wantStatus:  timeline.DeadLettered,
		wantStep:    "license",
		wantSummary: "dead-lettered at license: replay with guestflow dlq replay 2",
	}, {
		name:        "replayed and on its way",
		recs:        records(ana[0], ana[1], replayed(ana[1]), ana[2]),
		wantSteps:   []string{"joined", "invite", "replay", "license"},
		wantStatus:  timeline.Waiting,
		wantStep:    "role",
		wantSummary: "waiting at role",
	}, {
		name:        "a dead letter of a step that emitted since is stale",
		recs:        records(ana[:3]...),
		letters:     []dlq.Letter{deadLetter(1, "license", "graph_error", ana[1], true), deadLetter(2, "role", "unknown_role", ana[2], true)},
		wantSteps:   []string{"joined", "invite", "license"},
		wantStatus:  timeline.DeadLettered,
		wantStep:    "role",
		wantSummary: "dead-lettered at role: replay with guestflow dlq replay 2",
	}, {
		name:        "onboarded with a dead letter left over",
		recs:        records(ana...),
		letters:     []dlq.Letter{deadLetter(4, "notify", "graph_error", ana[3], true)},
		wantSteps:   []string{"joined", "invite", "license", "role", "notify"},
		wantStatus:  timeline.Onboarded,
		wantSummary: "onboarded; dead letters left over from earlier attempts: remove them with guestflow dlq purge 4",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			obs := timeline.Build(tc.recs, tc.letters)
			if len(obs) != 1 {
				t.Fatalf("%d onboardings, want 1", len(obs))
			}
			ob := obs[0]
			var steps []string
			for _, e := range ob.Steps {
				steps = append(steps, e.Step)
			}
			if !slices.Equal(steps, tc.wantSteps) {
				t.Errorf("steps %v, want %v", steps, tc.wantSteps)
			}
			if ob.ID != "ob-1" || ob.Email != "ana@fabrikam.com" {
				t.Errorf("onboarding %q of %q", ob.ID, ob.Email)
			}
			if ob.State.Status != tc.wantStatus || ob.State.Step != tc.wantStep || ob.State.Summary != tc.wantSummary {
				t.Errorf("state %+v, want %s at %q: %q", ob.State, tc.wantStatus, tc.wantStep, tc.wantSummary)
			}
			if len(ob.DeadLetters) != len(tc.letters) {
				t.Errorf("%d dead letters, want %d", len(ob.DeadLetters), len(tc.letters))
			}
		})
	}
}

func TestStatusEntries(t *testing.T) {
	ana := flow(t, "ob-1", "ana@fabrikam.com", 5)
	ob := timeline.Build(records(ana[0], ana[1], replayed(ana[1]), ana[2], ana[3], ana[4]), nil)[0]
	for i, want := range []struct {
		step     string
		attempts int
		outcome  string
	}{
		{"joined", 0, "ana@fabrikam.com joined instance sales"},
		{"invite", 1, "invited as ana_fabrikam.com#EXT#@contoso.onmicrosoft.com, added to group g-1"},
		{"replay", 0, "dead letter replayed to the license step"},
		{"license", 2, "licensed DYN365_ENTERPRISE_SALES (usage location PT)"},
		{"role", 3, "roles Salesperson as systemuser su-1"},
		{"notify", 4, "notified at 2026-03-01T09:00:04Z"},
	} {
		e := ob.Steps[i]
		if e.Step != want.step || e.Attempts != want.attempts || e.Outcome != want.outcome {
			t.Errorf("entry %d: %s, %d attempts, %q; want %s, %d, %q", i, e.Step, e.Attempts, e.Outcome, want.step, want.attempts, want.outcome)
		}
	}
	if !ob.Steps[1].Time.Equal(t0.Add(1e9)) || ob.Instance != "sales" {
		t.Errorf("the invite entry's time is the event's: %v; instance %q", ob.Steps[1].Time, ob.Instance)
	}
}

func TestStatusOutcomes(t *testing.T) {
	for _, tc := range []struct {
		typ, data, want string
	}{
		{events.TypeInvited, `{"userPrincipalName":"ana@contoso.com","existingUser":true}`, "existing user ana@contoso.com, invited again"},
		{events.TypeInvited, `{"userPrincipalName":"megan@contoso.com","existingUser":true,"userType":"Member"}`, "member of the tenant megan@contoso.com, not invited"},
		{events.TypeRoleAssigned, `{"systemUserId":"su","assignedRoles":[{"name":"A"},{"name":"B"}],"emailUpdated":true}`, "roles A, B as systemuser su, email address fixed"},
		{events.TypeOnboarded, `{"email":"a@b.example"}`, "onboarded without a mail (sendEmail false)"},
	} {
		recs := []timeline.Record{timeline.NewRecord(1, mustSubject(tc.typ), t0, nil, structured(t, tc.typ, tc.data))}
		if got := timeline.Build(recs, nil)[0].Steps[0].Outcome; got != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.typ, tc.data, got, tc.want)
		}
	}
}

func TestStatusGroupsOnboardingsOfOneAddress(t *testing.T) {
	first := flow(t, "ob-1", "ana@fabrikam.com", 5)
	second := flow(t, "ob-2", "ana@fabrikam.com", 2)
	obs := timeline.Build(records(first[0], second[0], first[1], second[1], first[2], first[3], first[4]), nil)
	if len(obs) != 2 || obs[0].ID != "ob-1" || obs[1].ID != "ob-2" {
		t.Fatalf("onboardings %+v", obs)
	}
	if obs[0].State.Status != timeline.Onboarded || obs[1].State.Summary != "waiting at license" || len(obs[1].Steps) != 2 {
		t.Errorf("states %q / %q", obs[0].State.Summary, obs[1].State.Summary)
	}
}

func TestStatusKeepsAMessageThatDoesNotDecode(t *testing.T) {
	body := []byte(`{"specversion":"1.0","id":"ob-9","source":"hr","type":"io.guestflow.user.invited.v1","data":{"email":"Ana@Fabrikam.com"}}`)
	obs := timeline.Build([]timeline.Record{timeline.NewRecord(1, events.SubjectJoined, t0, nil, body)}, nil)
	e := obs[0].Steps[0]
	if obs[0].ID != "ob-9" || obs[0].Email != "ana@fabrikam.com" || e.Step != "joined" || !strings.HasPrefix(e.Outcome, "does not decode: ") {
		t.Errorf("onboarding %q of %q, entry %+v", obs[0].ID, obs[0].Email, e)
	}
}

func TestStatusMatches(t *testing.T) {
	for _, tc := range []struct {
		query, id, email string
		want             bool
	}{
		{"ob-1", "ob-1", "ana@fabrikam.com", true},
		{"OB-1", "ob-1", "ana@fabrikam.com", false},
		{"Ana@Fabrikam.com", "ob-1", "ana@fabrikam.com", true},
		{" ana@fabrikam.com ", "ob-1", "ana@fabrikam.com", true},
		{"ana", "ob-1", "ana", false},
		{"liam@contoso.example", "ob-1", "ana@fabrikam.com", false},
		{"", "", "", false},
	} {
		if got := timeline.Matches(tc.query, tc.id, tc.email); got != tc.want {
			t.Errorf("Matches(%q, %q, %q) = %v", tc.query, tc.id, tc.email, got)
		}
	}
}

// TestStatusWriteEscapesControls: a publisher controls every field of a
// joined event and, through the dead-letter subjects, the dead letters.
func TestStatusWriteEscapesControls(t *testing.T) {
	j := events.Joined{Email: "ana@fabrikam.com", GivenName: "Ana", Surname: "Silva", UsageLocation: "PT",
		Instance: "sales\x1b]0;owned\x07\r\u202egnp"}
	ev, err := events.NewJoined("ob-1", "hr/test", j, t0)
	if err != nil {
		t.Fatal(err)
	}
	h, body, err := events.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	joined := msg{subject: events.SubjectJoined, header: h, body: body}
	l := deadLetter(9, "invite", "unknown_instance\u009b2J", joined, true)
	l.Error = "instance \x1b[31munknown\x1b[0m\r\n fix it"
	var out strings.Builder
	if err := timeline.Write(&out, timeline.Build(records(joined), []dlq.Letter{l})); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, r := range s {
		if r != '\n' && unicode.In(r, unicode.Cc, unicode.Cf) {
			t.Fatalf("status writes %U raw:\n%q", r, s)
		}
	}
	for _, want := range []string{`onboarding ob-1: ana@fabrikam.com, instance sales\x1b]0;owned\a\r\u202egnp`,
		`ana@fabrikam.com joined instance sales\x1b]0;owned\a\r\u202egnp`,
		`unknown_instance\u009b2J`, `instance \x1b[31munknown\x1b[0m\r\n fix it`} {
		if !strings.Contains(s, want) {
			t.Errorf("status lacks %q:\n%s", want, s)
		}
	}
}
