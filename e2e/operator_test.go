package e2e

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/guestflow/guestflow/internal/app"
	"github.com/guestflow/guestflow/internal/dlq"
	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/graphsim"
	"github.com/guestflow/guestflow/internal/timeline"
)

// status runs what `guestflow status QUERY` runs, with the emulator as
// the directory.
func (s *system) status(query string) (string, []timeline.Onboarding) {
	s.t.Helper()
	dir, err := app.NewGraph(s.cfg, app.Credentials{ClientID: graphsim.DefaultClientID, ClientSecret: graphsim.DefaultClientSecret})
	if err != nil {
		s.t.Fatal(err)
	}
	var out bytes.Buffer
	obs, err := timeline.Status(s.t.Context(), s.js, query, timeline.Options{Directory: dir}, &out)
	if err != nil {
		s.t.Fatalf("status %s: %v", query, err)
	}
	return out.String(), obs
}

// TestOperatorReplaysANoSeatDeadLetter is the operator's day: a guest
// is dead-lettered for want of a license seat, status says so, the DLQ lists
// it, seats are bought, a replay by reason finishes the onboarding.
func TestOperatorReplaysANoSeatDeadLetter(t *testing.T) {
	s := start(t, graphsim.Options{SyncDelay: 100 * time.Millisecond})
	if _, err := s.sim.SetSeats("DYN365_ENTERPRISE_SALES", 0); err != nil {
		t.Fatal(err)
	}
	s.publishJoined("op-1", sales("Ana@Fabrikam.com"))
	dl := s.awaitDeadLetter("license")
	seq := strconv.FormatUint(dl.Sequence, 10)

	out, obs := s.status("ana@fabrikam.com")
	if len(obs) != 1 || obs[0].ID != "op-1" || obs[0].State.Status != timeline.DeadLettered || obs[0].State.Step != "license" {
		t.Fatalf("status before the replay: %+v\n%s", obs, out)
	}
	for _, want := range []string{
		"onboarding op-1: ana@fabrikam.com, instance sales",
		"ana@fabrikam.com joined instance sales", "invited as ana_fabrikam.com#EXT#@",
		"    " + seq + "    license  ", failure.NoLicenseSeats,
		"  invitation: PendingAcceptance: the guest ana_fabrikam.com#EXT#@",
		"  → dead-lettered at license: replay with guestflow dlq replay " + seq + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	bySeats := dlq.Filter{Reasons: []string{failure.NoLicenseSeats}}
	listed, err := dlq.List(t.Context(), s.js, bySeats)
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := dlq.WriteTable(&table, listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].Seq != dl.Sequence || !strings.Contains(table.String(), "op-1") ||
		!strings.Contains(table.String(), "license  no_license_seats") {
		t.Fatalf("dlq list --reason no_license_seats:\n%s", table.String())
	}

	if _, err := s.sim.SetSeats("DYN365_ENTERPRISE_SALES", 5); err != nil {
		t.Fatal(err)
	}
	var replayed bytes.Buffer
	r, err := dlq.ReplayMatching(t.Context(), s.js, dlq.ReplayOptions{Filter: bySeats, Rate: dlq.DefaultRate}, &replayed)
	if err != nil || len(r.Done) != 1 || !strings.Contains(replayed.String(), "replayed 1 of 1 dead letter") {
		t.Fatalf("dlq replay --reason no_license_seats: %v\n%s", err, replayed.String())
	}
	s.await("op-1")

	// The notify step files the onboarded event in the index just after
	// the stream has stored it, which is when await sees it: status may
	// read the index a moment before that.
	want := []string{"joined", "invite", "replay", "license", "role", "notify"}
	var steps []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out, obs = s.status("op-1")
		steps = steps[:0]
		for _, e := range obs[0].Steps {
			steps = append(steps, e.Step)
		}
		if slices.Equal(steps, want) || time.Now().After(deadline) {
			break
		}
	}
	if !slices.Equal(steps, want) {
		t.Errorf("steps %v, want %v\n%s", steps, want, out)
	}
	if obs[0].State.Status != timeline.Onboarded || !strings.HasSuffix(out, "  → onboarded\n") ||
		!strings.Contains(out, "licensed DYN365_ENTERPRISE_SALES") || !strings.Contains(out, "dead letter replayed to the license step") {
		t.Errorf("status after the replay:\n%s", out)
	}
	if left, err := dlq.List(t.Context(), s.js, dlq.Filter{}); err != nil || len(left) != 0 {
		t.Errorf("the DLQ after the replay: %d left, %v", len(left), err)
	}
}
