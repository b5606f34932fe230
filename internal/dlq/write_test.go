package dlq_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

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

// hostile is a dead letter whose publisher filled headers and body with
// terminal escapes, a carriage return and a bidi override.
func hostile() dlq.Letter {
	l := sample()
	h := nats.Header{}
	for k, v := range l.Header {
		h[k] = v
	}
	h.Set(worker.HeaderReason, "no_seats\x1b[2J")
	h.Set(worker.HeaderError, "\x1b]0;owned\x07fix it\rreplay now")
	h.Set(worker.HeaderOnboardingID, "ob-\u202e1-gnp")
	h.Set(worker.HeaderStep, "license\u009b31m")
	h["X-Evil\x1b[1m"] = []string{"v\x1b[0m"}
	m := &jetstream.RawStreamMsg{Subject: "guestflow.dlq.license\x1b[8m", Sequence: l.Seq, Time: l.Stored, Header: h,
		Data: []byte("{\"data\":{\"givenName\":\"\u202eAna\u0085\x7f\"}}")}
	return dlq.Parse(m)
}

// noControls fails when s holds a control or format character other than
// the newlines between lines.
func noControls(t *testing.T, what, s string) {
	t.Helper()
	for _, r := range s {
		if r != '\n' && (unicode.In(r, unicode.Cc, unicode.Cf) || r == utf8.RuneError) {
			t.Errorf("%s writes %U raw:\n%q", what, r, s)
			return
		}
	}
}

func TestDLQOutputEscapesControls(t *testing.T) {
	notJSON := hostile()
	notJSON.Seq, notJSON.Data = 13, []byte("plain \x1b[31mred\r\n\u202eback")
	ls := []dlq.Letter{hostile(), notJSON}
	var table, details bytes.Buffer
	if err := dlq.WriteTable(&table, ls); err != nil {
		t.Fatal(err)
	}
	if err := dlq.WriteDetails(&details, ls); err != nil {
		t.Fatal(err)
	}
	noControls(t, "the table", table.String())
	noControls(t, "the details", details.String())
	for _, want := range []string{`no_seats\x1b[2J`, `ob-\u202e1-gnp`, `license\u009b31m`, `\x1b]0;owned\afix it replay now`} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	for _, want := range []string{
		`dead letter 12 on guestflow.dlq.license\x1b[8m`,
		`Guestflow-Error:`, `\x1b]0;owned\afix it\rreplay now`,
		`X-Evil\x1b[1m:`, `v\x1b[0m`,
		`"givenName": "\u202eAna\u0085\x7f"`,
		"  plain \\x1b[31mred\\r\n  \\u202eback",
	} {
		if !strings.Contains(details.String(), want) {
			t.Errorf("details lack %q:\n%s", want, details.String())
		}
	}
}
