package events_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/guestflow/guestflow/pkg/events"
)

var fuzzSubjects = []string{
	events.SubjectJoined, events.SubjectInvited, events.SubjectLicensed,
	events.SubjectRoleAssigned, events.SubjectOnboarded, "guestflow.user.left",
}

// parseHeader reads "Name: value" lines, so the fuzzer can vary headers
// through one string. Names keep their case; a repeated name adds a value.
func parseHeader(s string) map[string][]string {
	if s == "" {
		return nil
	}
	h := map[string][]string{}
	for _, line := range strings.Split(s, "\n") {
		name, value, _ := strings.Cut(line, ": ")
		h[name] = append(h[name], value)
	}
	return h
}

func FuzzDecode(f *testing.F) {
	f.Add(uint8(0), "", structured(f, nil))
	f.Add(uint8(0), "Content-Type: application/cloudevents+json; charset=utf-8", structured(f, map[string]any{"partnerid": "p-7", "retries": 3, "urgent": false}))
	f.Add(uint8(1), "", structured(f, map[string]any{"type": events.TypeInvited, "onboardingid": "hr-1", "traceparent": inputTrace}))
	f.Add(uint8(0), "", structured(f, map[string]any{"data": nil, "data_base64": "e30="}))
	f.Add(uint8(0), "ce-specversion: 1.0\nce-id: hr-1\nce-source: hr/workday\nce-type: "+events.TypeJoined+"\nce-time: 2024-05-01T09:30:00Z\nce-partnerid: p-7\nContent-Type: application/json", []byte(joinedData))
	f.Add(uint8(4), "ce-specversion: 1.0\nce-id: x\nce-source: guestflow/notify\nce-type: "+events.TypeOnboarded+"\nContent-Type: Application/JSON; charset=utf-8", []byte(`{"notifiedAt":"2024-05-01T09:30:00Z"}`))
	f.Add(uint8(0), "Ce-Specversion: 1.0", []byte(joinedData))
	f.Add(uint8(0), "", []byte(`{"id":"x","specversion":"1.0","source":"//","type":"io.guestflow.user.joined.v1","data":{}}`))
	f.Add(uint8(0), "", []byte("{\"id\":\"x\xff\",\"specversion\":\"1.0\",\"source\":\"hr\",\"type\":\"io.guestflow.user.joined.v1\",\"data\":{\"a\":\"\\ud800\"}}"))
	f.Fuzz(func(t *testing.T, which uint8, rawHeader string, body []byte) {
		subject := fuzzSubjects[int(which)%len(fuzzSubjects)]
		header := parseHeader(rawHeader)
		_ = events.PeekID(header, body)
		ev, err := events.Decode(subject, header, body)
		if err != nil {
			if !errors.Is(err, events.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if !utf8.Valid(body) {
			t.Fatalf("accepted a body that is not UTF-8: %q", body)
		}
		h, b, err := events.Encode(ev)
		if err != nil {
			t.Fatalf("decoded event does not encode: %v\n%s", err, ev)
		}
		if subject == events.SubjectJoined && len(b)+len("Content-Type")+len(h["Content-Type"][0]) > events.MaxJoinedSize {
			return // a message at the size limit may grow when re-encoded
		}
		again, err := events.Decode(subject, h, b)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v\n%s", err, b)
		}
		if again.ID() != ev.ID() || again.Type() != ev.Type() {
			t.Fatalf("round trip changed id/type %q/%q to %q/%q", ev.ID(), ev.Type(), again.ID(), again.Type())
		}
		if id := events.PeekID(h, b); id != ev.ID() {
			t.Fatalf("PeekID of the encoded event = %q, want %q", id, ev.ID())
		}
	})
}

func FuzzParseJoined(f *testing.F) {
	f.Add([]byte(joinedData))
	f.Add([]byte(`{"email":" Liam.O'Brien@Contoso.co.uk ","givenName":" Liam ","surname":"O'Brien","usageLocation":"gb","instance":"sales","roles":[" Salesperson "],"sendEmail":false,"redirectUrl":"https://x.io/a?b=c","message":"<b>hi</b>"}`))
	f.Add([]byte(`{"email":"a@b.c","givenName":"\u0085A","surname":"B\u3000","displayName":null,"usageLocation":"UK","instance":1,"roles":"x","sendEmail":"true"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte("{\"email\":\"a@b.example\",\"givenName\":\"A\xff\",\"surname\":\"B\",\"usageLocation\":\"PT\",\"instance\":\"s\"}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := events.ParseJoined(data)
		if err == nil && !utf8.Valid(data) {
			t.Fatalf("accepted data that is not UTF-8: %q", data)
		}
		if err != nil {
			if !errors.Is(err, events.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			if fes := fieldErrors(t, err); len(fes) == 0 {
				t.Fatal("error without a FieldError")
			}
			return
		}
		b, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		again, err := events.ParseJoined(b)
		if err != nil {
			t.Fatalf("normalised value %s does not parse: %v", b, err)
		}
		if !reflect.DeepEqual(again, j) {
			t.Fatalf("not idempotent:\n%+v\n%+v", j, again)
		}
	})
}
