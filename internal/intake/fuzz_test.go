package intake

import (
	"net/http"
	"strings"
	"testing"

	"github.com/guestflow/guestflow/functions/invite"
	"github.com/guestflow/guestflow/pkg/events"
)

// FuzzDecode feeds the intake's decoder any headers and body. Whatever it
// accepts must be exactly what the invite step accepts, carry no header
// but Content-Type and ce-*, and fit the joined event's size; whatever it
// refuses must be a 400, 413 or 415. `go test` runs the seeds.
func FuzzDecode(f *testing.F) {
	const data = `{"email":"ana@fabrikam.com","givenName":"Ana","surname":"Silva","usageLocation":"PT","instance":"sales"}`
	structured := `{"specversion":"1.0","id":"f-1","source":"hr/test","type":"io.guestflow.user.joined.v1","data":` + data + `}`
	binaryHeaders := "ce-specversion: 1.0\nce-id: f-2\nce-source: hr/test\nce-type: io.guestflow.user.joined.v1\n"
	for _, seed := range []struct{ header, body string }{
		{"Content-Type: application/cloudevents+json", structured},
		{"Content-Type: application/cloudevents+json; charset=utf-8\nce-specversion: 0.3", structured},
		{"Content-Type: application/cloudevents-batch+json", "[" + structured + "," + strings.Replace(structured, "f-1", "f-3", 1) + "]"},
		{"Content-Type: application/cloudevents-batch+json", "[" + structured + `,{"id":1}]`},
		{"Content-Type: application/cloudevents-batch+json", `[[],{},"x",null]`},
		{"Content-Type: application/json\n" + binaryHeaders, data},
		{"Content-Type: application/json\n" + binaryHeaders + "ce-subject: %41na%20%E2%82%AC\nce-x: \"q\\\"uoted\"", data},
		{"Content-Type: application/json\n" + binaryHeaders + "ce-id: dup", data},
		{"Content-Type: application/json\nce-specversion: 1.0\nce-id: %20padded%20\nce-source: hr\nce-type: io.guestflow.user.joined.v1", data},
		{"Content-Type: application/json\n" + binaryHeaders + "ce-bad: %zz\nce-nul: %00\nce-crlf: a%0D%0Ab", data},
		{"Content-Type: text/json\n" + binaryHeaders + "ce-datacontenttype: application/json", data},
		{"Content-Type: application/json", structured},
		{"Content-Type: text/plain\n" + binaryHeaders, "hi"},
		{"", structured},
		{"Content-Type: application/cloudevents+json", `{"specversion":"1.0","id":"f-4","source":"hr","type":"io.guestflow.user.joined.v1","data_base64":"eyJlbWFpbCI6ImFAYi5jbyJ9"}`},
		{"Content-Type: application/cloudevents+json", "{\"specversion\":\"1.0\",\"id\":\"\xff\",\"data\":{}}"},
	} {
		f.Add(seed.header, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, headerText string, body []byte) {
		h := http.Header{}
		for _, line := range strings.Split(headerText, "\n") {
			if name, value, ok := strings.Cut(line, ":"); ok && name != "" {
				h.Add(name, strings.TrimSpace(value))
			}
		}
		m, rerr := requestMode(h)
		if rerr != nil {
			if rerr.status != http.StatusUnsupportedMediaType {
				t.Fatalf("requestMode answered %d", rerr.status)
			}
			return
		}
		msgs, rerr := decode(m, h, body)
		if rerr != nil {
			if s := rerr.status; s != http.StatusBadRequest && s != http.StatusRequestEntityTooLarge {
				t.Fatalf("decode answered %d", s)
			}
			return
		}
		if len(msgs) == 0 || len(msgs) > MaxBatch || (m != modeBatch && len(msgs) != 1) {
			t.Fatalf("%d messages in mode %d", len(msgs), m)
		}
		for _, msg := range msgs {
			for name, values := range msg.header {
				if name != "Content-Type" && !strings.HasPrefix(name, "ce-") {
					t.Fatalf("header %q would be published", name)
				}
				// NATS trims header values in transit.
				for _, v := range values {
					if v != strings.Trim(v, " \t") {
						t.Fatalf("header %s: %q would reach the step trimmed", name, v)
					}
				}
			}
			if n := events.MessageSize(msg.header, msg.body); n > events.MaxJoinedSize {
				t.Fatalf("accepted a message of %d bytes", n)
			}
			ev, err := events.Decode(events.SubjectJoined, msg.header, msg.body)
			if err != nil {
				t.Fatalf("accepted what the invite step's decoder refuses: %v", err)
			}
			if _, err := invite.Check(ev); err != nil {
				t.Fatalf("accepted what the invite step refuses: %v", err)
			}
			if ev.ID() != msg.ev.ID() || ev.ID() == "" {
				t.Fatalf("id %q, published as %q", ev.ID(), msg.ev.ID())
			}
		}
	})
}

// TestUnescapeHeaderValue checks the HTTP binding's decoding rules.
func TestUnescapeHeaderValue(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                           "plain",
		"Euro%20%E2%82%AC%20%F0%9F%98%80": "Euro € 😀",
		"%41%62c":                         "Abc",
		"%e2%82%ac":                       "€",
		`"quoted \"value\""`:              `quoted "value"`,
		`"%22"`:                           `"`,
		`"`:                               `"`,
	} {
		got, err := unescapeHeaderValue(in)
		if err != nil || got != want {
			t.Errorf("%q: %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"100%", "%4", "%zz", `"a\"`, `"a"b"`} {
		if got, err := unescapeHeaderValue(in); err == nil {
			t.Errorf("%q: %q, no error", in, got)
		}
	}
}
