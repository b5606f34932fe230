package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/guestflow/guestflow/internal/graphsim"
)

// publishJoined stores a joined event of onboarding id for email on the
// GUESTFLOW stream, as an HR system would.
func (e *operatorEnv) publishJoined(id, email string) {
	e.t.Helper()
	h, body := joinedMsg(e.t, id, email)
	if _, err := e.js.PublishMsg(context.Background(), &nats.Msg{Subject: "guestflow.user.joined", Header: h, Data: body}); err != nil {
		e.t.Fatal(err)
	}
}

func TestStatus(t *testing.T) {
	e := newOperatorEnv(t, true)
	e.publishJoined("ob-1", "ana@fabrikam.com")
	e.publishJoined("ob-2", "liam@contoso.example")
	seq := e.deadLetter("invite", "unknown_instance", "ob-1", time.Now())

	out, _, err := e.run(nil, "status", "ANA@fabrikam.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"onboarding ob-1: ana@fabrikam.com, instance sales",
		"  joined  2026-03-01T09:00:00Z  0s     -         ana@fabrikam.com joined instance sales",
		"unknown_instance",
		"  invitation: " + noTenantNote,
		"  → dead-lettered at invite: replay with guestflow dlq replay 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if seq != 1 || strings.Contains(out, "liam") {
		t.Errorf("status shows someone else:\n%s", out)
	}

	out, _, err = e.run(nil, "status", "ob-2", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got []struct {
		OnboardingID string `json:"onboardingId"`
		Email        string `json:"email"`
		State        struct {
			Summary string `json:"summary"`
		} `json:"state"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 1 || got[0].Email != "liam@contoso.example" ||
		got[0].State.Summary != "waiting at invite" {
		t.Errorf("--json: %v\n%s", err, out)
	}

	if _, _, err := e.run(nil, "status", "nobody@fabrikam.com"); err == nil || !strings.Contains(err.Error(), `no onboarding of "nobody@fabrikam.com"`) {
		t.Errorf("status of nobody: %v", err)
	}
}

func TestStatusWithoutTheStream(t *testing.T) {
	e := newOperatorEnv(t, false)
	_, _, err := e.run(nil, "status", "ana@fabrikam.com")
	if err == nil || err.Error() != "no onboardings yet: the stream GUESTFLOW does not exist; start a worker first" {
		t.Errorf("error %v", err)
	}
}

// TestStatusReadsTheInvitationFromGraph points status at the emulator
// through --config and the AZURE_… variables, as an operator would.
func TestStatusReadsTheInvitationFromGraph(t *testing.T) {
	sim, err := graphsim.New(graphsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), sim.CAPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := sim.Config()
	cfg.Tenant.CAFile = "ca.pem"
	raw, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	configPath := filepath.Join(dir, "guestflow.yaml")
	if err := os.WriteFile(configPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AZURE_CLIENT_ID", graphsim.DefaultClientID)
	t.Setenv("AZURE_CLIENT_SECRET", graphsim.DefaultClientSecret)

	e := newOperatorEnv(t, true)
	e.publishJoined("ob-megan", graphsim.MeganAddress)
	out, _, err := e.run(nil, "status", graphsim.MeganAddress, "--config", configPath)
	if err != nil {
		t.Fatal(err)
	}
	if want := "  invitation: none to accept: " + graphsim.MeganAddress + " is a member of the tenant"; !strings.Contains(out, want) {
		t.Errorf("status lacks %q:\n%s", want, out)
	}
}
