package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/guestflow/guestflow/internal/graphsim"
	"github.com/guestflow/guestflow/internal/intake"
	"github.com/guestflow/guestflow/internal/timeline"
	"github.com/guestflow/guestflow/pkg/events"
)

// TestIntakeOnboardsUsersPostedInEveryMode posts users to the HTTP intake
// as an HR system would: with the CloudEvents SDK's client in structured
// and binary mode, and a batch. Every one is onboarded, a repeated post is
// answered as a duplicate and onboards nobody twice, and the intake then
// tells where each onboarding stands.
func TestIntakeOnboardsUsersPostedInEveryMode(t *testing.T) {
	s := start(t, graphsim.Options{SyncDelay: 200 * time.Millisecond})
	const token = "e2e-intake-token-0123456789"
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := intake.New(s.nc, intake.Options{TokensFile: tokens})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)

	users := map[string]events.Joined{
		"hr-structured": {Email: "ana.silva@fabrikam.com", GivenName: "Ana", Surname: "Silva", UsageLocation: "PT", Instance: "sales"},
		"hr-binary":     {Email: "liam.obrien@contoso.example", GivenName: "Liam", Surname: "O'Brien", UsageLocation: "IE", Instance: "service"},
		"hr-batch-1":    {Email: "kenji.sato@adatum.example", GivenName: "Kenji", Surname: "Sato", UsageLocation: "JP", Instance: "legacy"},
		"hr-batch-2":    {Email: "eva.novak@fabrikam.com", GivenName: "Eva", Surname: "Novak", UsageLocation: "CZ", Instance: "sales"},
	}
	event := func(id string) cloudevents.Event {
		ev, err := events.NewJoined(id, "hr/workday", users[id], time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	c, err := cloudevents.NewClientHTTP(cehttp.WithTarget(hs.URL+"/v1/events"), cehttp.WithHeader("Authorization", "Bearer "+token))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for id, ctx := range map[string]context.Context{
		"hr-structured": cloudevents.WithEncodingStructured(ctx),
		"hr-binary":     cloudevents.WithEncodingBinary(ctx),
	} {
		var hr *cehttp.Result
		if res := c.Send(ctx, event(id)); !errors.As(res, &hr) || hr.StatusCode != http.StatusAccepted {
			t.Fatalf("%s: %v", id, res)
		}
	}
	// The SDK's client sends one event a request; a batch goes as the
	// SDK's own NewHTTPRequestFromEvents writes it.
	req, err := cehttp.NewHTTPRequestFromEvents(ctx, hs.URL+"/v1/events", []cloudevents.Event{event("hr-batch-1"), event("hr-batch-2"), event("hr-structured")})
	if err != nil {
		t.Fatal(err)
	}
	var acks []intake.Accepted
	post(t, req, token, http.StatusAccepted, &acks)
	want := []intake.Accepted{{OnboardingID: "hr-batch-1"}, {OnboardingID: "hr-batch-2"}, {OnboardingID: "hr-structured", Duplicate: true}}
	if len(acks) != 3 || acks[0] != want[0] || acks[1] != want[1] || acks[2] != want[2] {
		t.Errorf("batch answered %+v, want %+v", acks, want)
	}

	done := s.await("hr-structured", "hr-binary", "hr-batch-1", "hr-batch-2")
	var dir []simUser
	s.inspect("/_sim/users", &dir)
	var mails []simMail
	s.inspect("/_sim/mail", &mails)
	for id, j := range users {
		if d := onboardedData(t, done[id]); d.Email != j.Email || d.Instance != j.Instance {
			t.Errorf("%s: onboarded %s in %s", id, d.Email, d.Instance)
		}
		n, m := 0, 0
		for _, u := range dir {
			if strings.EqualFold(u.Mail, j.Email) {
				n++
			}
		}
		for _, ml := range mails {
			if len(ml.To) == 1 && ml.To[0] == j.Email {
				m++
			}
		}
		if n != 1 || m != 1 {
			t.Errorf("%s: %d directory users and %d mails, want one each", id, n, m)
		}
	}

	// Where they stand: what `guestflow status --json` says.
	for id := range users {
		req, _ := http.NewRequest(http.MethodGet, hs.URL+"/v1/onboardings/"+id, nil)
		var obs []timeline.Onboarding
		post(t, req, token, http.StatusOK, &obs)
		if len(obs) != 1 || obs[0].ID != id || obs[0].State.Status != timeline.Onboarded {
			t.Errorf("GET %s: %+v", id, obs)
		}
		// the duplicate left one joined event
		joined := 0
		for _, st := range obs[0].Steps {
			if st.Step == "joined" {
				joined++
			}
		}
		if joined != 1 {
			t.Errorf("%s: %d joined events", id, joined)
		}
	}
}

// TestIntakeRefusesWhatTheInviteStepWouldDeadLetter: an event the
// intake refuses never reaches the stream, so no dead letter is made.
func TestIntakeRefusesWhatTheInviteStepWouldDeadLetter(t *testing.T) {
	s := start(t, graphsim.Options{})
	const token = "e2e-intake-token-0123456789"
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := intake.New(s.nc, intake.Options{TokensFile: tokens})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	body := `{"specversion":"1.0","id":"hr-bad","source":"hr/workday","type":"io.guestflow.user.joined.v1",` +
		`"data":{"email":"ana.silva@fabrikam.com","givenName":"Ana","surname":"Silva","usageLocation":"XX","instance":"sales"}}`
	req, _ := http.NewRequest(http.MethodPost, hs.URL+"/v1/events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/cloudevents+json")
	var p struct {
		Error  string
		Fields []struct{ Field string }
	}
	post(t, req, token, http.StatusBadRequest, &p)
	if len(p.Fields) != 1 || p.Fields[0].Field != "usageLocation" {
		t.Errorf("answer %+v", p)
	}
	st, err := s.js.Stream(context.Background(), "GUESTFLOW")
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Msgs; n != 0 {
		t.Errorf("%d messages on GUESTFLOW", n)
	}
}

// post sends req with the bearer token and decodes the JSON answer.
func post(t *testing.T, req *http.Request, token string, status int, v any) {
	t.Helper()
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, b)
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
}
