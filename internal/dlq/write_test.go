package dlq_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/dlq"
	"github.com/guestflow/guestflow/internal/worker"
)

func sample() dlq.Letter {
	return dlq.Parse(&jetstream.RawStreamMsg{
		Subject: "guestflow.dlq.license", Sequence: 12, Time: time.Date(2026, 3, 1, 9, 0, 1, 0, time.UTC),
		Header: nats.Header{
			"Content-Type":               {"application/cloudevents+json"},
			worker.HeaderStep:            {"license"},
			worker.HeaderReason:          {"no_license_seats"},
			worker.HeaderError:           {"No free seat of DYN365_ENTERPRISE_SALES is left (5 of 5 assigned): buy more seats or free one, then replay this dead letter."},
			worker.HeaderAttempts:        {"1"},
			worker.HeaderOriginalSubject: {"guestflow.user.invited"},
			worker.HeaderFailedAt:        {"2026-03-01T09:00:00Z"},
			worker.HeaderHTTPStatus:      {"400"},
			worker.HeaderRequestID:       {"req-1"},
			worker.HeaderOnboardingID:    {"ob-1"},
		},
		Data: []byte(`{"specversion":"1.0","id":"x","data":{"email":"ana@fabrikam.com"}}`),
	})
}

func TestDLQWriteTable(t *testing.T) {
	var out bytes.Buffer
	if err := dlq.WriteTable(&out, []dlq.Letter{sample()}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("table:\n%s", out.String())
	}
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "SEQ FAILED AT STEP REASON ONBOARDING ATTEMPTS HTTP ERROR" {
		t.Errorf("header %q", lines[0])
	}
	for _, want := range []string{"12", "2026-03-01T09:00:00Z", "license", "no_license_seats", "ob-1", "400",
		"No free seat of DYN365_ENTERPRISE_SALES is left (5 of 5 ass…"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row %q lacks %q", lines[1], want)
		}
	}
}

func TestDLQWriteJSON(t *testing.T) {
	plain := sample()
	plain.Seq, plain.Data = 13, []byte("not json \xff")
	var out bytes.Buffer
	if err := dlq.WriteJSON(&out, []dlq.Letter{sample(), plain}); err != nil {
		t.Fatal(err)
	}
	var got []struct {
		Seq          uint64              `json:"seq"`
		Subject      string              `json:"subject"`
		Reason       string              `json:"reason"`
		FailedAt     time.Time           `json:"failedAt"`
		OnboardingID string              `json:"onboardingId"`
		HTTPStatus   int                 `json:"httpStatus"`
		Headers      map[string][]string `json:"headers"`
		Body         map[string]any      `json:"body"`
		BodyText     *string             `json:"bodyText"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("not one JSON array: %v\n%s", err, out.String())
	}
	if len(got) != 2 {
		t.Fatalf("%d letters", len(got))
	}
	a := got[0]
	if a.Seq != 12 || a.Subject != "guestflow.dlq.license" || a.Reason != "no_license_seats" || a.OnboardingID != "ob-1" ||
		a.HTTPStatus != 400 || !a.FailedAt.Equal(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)) || len(a.Headers) != 10 ||
		a.Headers[worker.HeaderRequestID][0] != "req-1" || a.Body["id"] != "x" || a.BodyText != nil {
		t.Errorf("first letter %+v", a)
	}
	if b := got[1]; b.Body != nil || b.BodyText == nil || *b.BodyText != "not json \uFFFD" {
		t.Errorf("a body that is not JSON: %+v", b)
	}

	out.Reset()
	if err := dlq.WriteJSON(&out, nil); err != nil || strings.TrimSpace(out.String()) != "[]" {
		t.Errorf("no letters: %q, %v", out.String(), err)
	}
}

func TestDLQWriteDetails(t *testing.T) {
	var out bytes.Buffer
	if err := dlq.WriteDetails(&out, []dlq.Letter{sample()}); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	step, ct := strings.Index(s, "Guestflow-Step:"), strings.Index(s, "Content-Type:")
	if step < 0 || ct < 0 || ct < step {
		t.Errorf("the contract's headers come first, then the others:\n%s", s)
	}
	for _, want := range []string{
		"dead letter 12 on guestflow.dlq.license",
		"Guestflow-Error:            No free seat of DYN365_ENTERPRISE_SALES is left (5 of 5 assigned): buy more seats or free one, then replay this dead letter.",
		"  {\n    \"specversion\": \"1.0\",",
		"replay it to guestflow.user.invited with: guestflow dlq replay 12",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("details lack %q:\n%s", want, s)
		}
	}
}
