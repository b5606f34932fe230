package events_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/guestflow/guestflow/pkg/events"
)

const joinedData = `{"email":"ana.silva@fabrikam.com","givenName":"Ana","surname":"Silva","usageLocation":"PT","instance":"sales"}`

// structured renders a valid structured joined event with set applied on top
// (nil deletes a member).
func structured(t testing.TB, set map[string]any) []byte {
	t.Helper()
	m := map[string]any{
		"specversion":     "1.0",
		"id":              "hr-1",
		"source":          "hr/workday",
		"type":            events.TypeJoined,
		"subject":         "ana.silva@fabrikam.com",
		"time":            "2024-05-01T09:30:00Z",
		"datacontenttype": "application/json",
		"data":            json.RawMessage(joinedData),
	}
	for k, v := range set {
		if v == nil {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// binary returns the headers of a valid binary joined event with set applied
// on top (nil deletes a header).
func binary(set map[string][]string) map[string][]string {
	h := map[string][]string{
		"ce-specversion": {"1.0"},
		"ce-id":          {"hr-1"},
		"ce-source":      {"hr/workday"},
		"ce-type":        {events.TypeJoined},
		"ce-time":        {"2024-05-01T09:30:00Z"},
		"Content-Type":   {"application/json"},
		"Nats-Msg-Id":    {"hr-1"},
	}
	for k, v := range set {
		if v == nil {
			delete(h, k)
			continue
		}
		h[k] = v
	}
	return h
}

// spoil replaces the first old in b by new, for bodies json.Marshal cannot
// write (it makes every string valid UTF-8).
func spoil(b []byte, old, new string) []byte {
	return []byte(strings.Replace(string(b), old, new, 1))
}

// nested is valid joined data that nests depth levels: the object, then
// arrays in its member x.
func nested(depth int) json.RawMessage {
	inner := strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1)
	return json.RawMessage(strings.Replace(joinedData, "{", `{"x":`+inner+",", 1))
}

var structuredCT = map[string][]string{"Content-Type": {"application/cloudevents+json"}}

func TestDecode(t *testing.T) {
	type check func(*testing.T, event.Event)
	tests := []struct {
		name    string
		subject string // default SubjectJoined
		header  map[string][]string
		body    []byte
		wantErr string // a phrase of the error; "" means valid
		check   check
	}{
		// Structured mode.
		{name: "structured", body: structured(t, nil), check: func(t *testing.T, ev event.Event) {
			if ev.ID() != "hr-1" || ev.Source() != "hr/workday" || ev.Type() != events.TypeJoined || ev.Subject() != "ana.silva@fabrikam.com" {
				t.Errorf("attributes: %s", ev)
			}
			if !ev.Time().Equal(time.Date(2024, 5, 1, 9, 30, 0, 0, time.UTC)) {
				t.Errorf("time %v", ev.Time())
			}
			if string(ev.Data()) != joinedData {
				t.Errorf("data %s", ev.Data())
			}
		}},
		{name: "structured content type", header: structuredCT, body: structured(t, nil)},
		{name: "structured content type case and charset", header: map[string][]string{"Content-Type": {"Application/CloudEvents+JSON ; charset=utf-8"}}, body: structured(t, nil)},
		{name: "structured without optional attributes", body: structured(t, map[string]any{"subject": nil, "time": nil, "datacontenttype": nil})},
		{name: "structured null attribute is absent", body: []byte(`{"specversion":"1.0","id":"hr-1","source":"hr","type":"io.guestflow.user.joined.v1","subject":null,"data":{}}`)},
		{name: "structured wrong content type", header: map[string][]string{"Content-Type": {"application/json"}}, body: structured(t, nil), wantErr: "not in binary mode"},
		{name: "structured text content type", header: map[string][]string{"Content-Type": {"text/plain"}}, body: structured(t, nil), wantErr: "Content-Type"},
		{name: "structured two content types", header: map[string][]string{"Content-Type": {"application/cloudevents+json", "application/cloudevents+json"}}, body: structured(t, nil), wantErr: "2 times"},
		{name: "missing id", body: structured(t, map[string]any{"id": nil}), wantErr: "id is missing"},
		{name: "blank id", body: structured(t, map[string]any{"id": "  "}), wantErr: "id is missing or blank"},
		{name: "id not a string", body: structured(t, map[string]any{"id": 7}), wantErr: "id must be a JSON string"},
		{name: "id with control character", body: structured(t, map[string]any{"id": "a\x01b"}), wantErr: "control character"},
		{name: "missing source", body: structured(t, map[string]any{"source": nil}), wantErr: "source is missing"},
		{name: "bad source", body: structured(t, map[string]any{"source": "%zz"}), wantErr: "URI reference"},
		{name: "missing specversion", body: structured(t, map[string]any{"specversion": nil}), wantErr: "specversion is missing"},
		{name: "old specversion", body: structured(t, map[string]any{"specversion": "0.3"}), wantErr: `"1.0" only`},
		{name: "numeric specversion", body: structured(t, map[string]any{"specversion": 1.0}), wantErr: "specversion must be a JSON string"},
		{name: "missing type", body: structured(t, map[string]any{"type": nil}), wantErr: "type is missing"},
		{name: "type of another subject", body: structured(t, map[string]any{"type": events.TypeInvited}), wantErr: "does not match subject guestflow.user.joined"},
		{name: "foreign type", body: structured(t, map[string]any{"type": "com.example.joined"}), wantErr: "does not match"},
		{name: "type padded", body: structured(t, map[string]any{"type": " " + events.TypeJoined}), wantErr: "does not match"},
		{name: "later event on its subject", subject: events.SubjectInvited, body: structured(t, map[string]any{"type": events.TypeInvited})},
		{name: "joined type on invited subject", subject: events.SubjectInvited, body: structured(t, nil), wantErr: "does not match subject guestflow.user.invited"},
		{name: "unknown subject", subject: "guestflow.user.left", body: structured(t, nil), wantErr: "carries no guestflow event"},
		{name: "time with offset and fraction", body: structured(t, map[string]any{"time": "2024-05-01T11:30:00.123+02:00"}), check: func(t *testing.T, ev event.Event) {
			if !ev.Time().Equal(time.Date(2024, 5, 1, 9, 30, 0, 123e6, time.UTC)) {
				t.Errorf("time %v", ev.Time())
			}
		}},
		{name: "time not RFC 3339", body: structured(t, map[string]any{"time": "2024-05-01 09:30:00"}), wantErr: "RFC 3339"},
		{name: "time words", body: structured(t, map[string]any{"time": "yesterday"}), wantErr: "RFC 3339"},
		{name: "time empty", body: structured(t, map[string]any{"time": ""}), wantErr: "RFC 3339"},
		{name: "time before year 0 in UTC", body: structured(t, map[string]any{"time": "0000-01-01T00:00:00+01:00"}), wantErr: "RFC 3339"},
		{name: "subject blank", body: structured(t, map[string]any{"subject": " "}), wantErr: "subject is blank"},
		{name: "data missing", body: structured(t, map[string]any{"data": nil}), wantErr: "data must be a JSON object; got nothing"},
		{name: "data array", body: structured(t, map[string]any{"data": []int{1}}), wantErr: "got an array"},
		{name: "data string", body: structured(t, map[string]any{"data": joinedData}), wantErr: "got a string"},
		{name: "data null", body: structured(t, map[string]any{"data": json.RawMessage("null")}), wantErr: "got nothing"},
		{name: "datacontenttype charset", body: structured(t, map[string]any{"datacontenttype": "Application/JSON; charset=utf-8"}), check: func(t *testing.T, ev event.Event) {
			if ev.DataContentType() != "application/json" {
				t.Errorf("datacontenttype %q", ev.DataContentType())
			}
		}},
		{name: "datacontenttype not JSON", body: structured(t, map[string]any{"datacontenttype": "text/plain"}), wantErr: "not JSON"},
		{name: "data_base64", body: structured(t, map[string]any{"data": nil, "data_base64": base64.StdEncoding.EncodeToString([]byte(joinedData))}), check: func(t *testing.T, ev event.Event) {
			if string(ev.Data()) != joinedData || ev.DataBase64 {
				t.Errorf("data %q base64 %v", ev.Data(), ev.DataBase64)
			}
		}},
		{name: "data and data_base64", body: structured(t, map[string]any{"data_base64": "e30="}), wantErr: "both data and data_base64"},
		{name: "data_base64 not base64", body: structured(t, map[string]any{"data": nil, "data_base64": "{}"}), wantErr: "base64"},
		{name: "dataschema absolute", body: structured(t, map[string]any{"dataschema": "https://guestflow.io/schemas/joined.json"})},
		{name: "dataschema relative", body: structured(t, map[string]any{"dataschema": "schemas/joined.json"}), wantErr: "absolute URI"},
		{name: "extensions kept", body: structured(t, map[string]any{"partnerid": "p-7", "retries": 3, "urgent": true, "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}), check: func(t *testing.T, ev event.Event) {
			want := map[string]any{"partnerid": "p-7", "retries": int32(3), "urgent": true, "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
			if !maps.Equal(ev.Extensions(), want) {
				t.Errorf("extensions %#v, want %#v", ev.Extensions(), want)
			}
		}},
		{name: "extension object", body: structured(t, map[string]any{"meta": map[string]any{"a": 1}}), wantErr: "extension meta must be a string, a boolean or an integer"},
		{name: "extension fraction", body: structured(t, map[string]any{"weight": 1.5}), wantErr: "whole numbers"},
		{name: "extension out of int32", body: structured(t, map[string]any{"big": 1 << 40}), wantErr: "whole numbers"},
		{name: "extension upper-case name", body: structured(t, map[string]any{"ID": "x"}), wantErr: "lower-case"},
		{name: "extension name with underscore", body: structured(t, map[string]any{"partner_id": "x"}), wantErr: "lower-case"},
		// Text that is not UTF-8, which encoding/json would turn into U+FFFD.
		{name: "id not UTF-8", body: spoil(structured(t, nil), `"hr-1"`, "\"hr-\xff1\""), wantErr: "id is not valid UTF-8 (byte 0xff, 3 bytes into the text)"},
		{name: "data field not UTF-8", body: spoil(structured(t, nil), `"Ana"`, "\"An\xffa\""), wantErr: "data.givenName is not valid UTF-8"},
		{name: "truncated UTF-8 sequence", body: spoil(structured(t, nil), `"Silva"`, "\"Silv\xc3\""), wantErr: "data.surname is not valid UTF-8"},
		{name: "unknown nested data field not UTF-8", body: structured(t, map[string]any{"data": json.RawMessage("{\"x\":{\"y\":[\"ok\",\"\xfe\"]}}")}),
			wantErr: "data.x.y[1] is not valid UTF-8"},
		{name: "member name not UTF-8", body: structured(t, map[string]any{"data": json.RawMessage("{\"giv\xffenName\":\"Ana\"}")}),
			wantErr: "data has a member name that is not valid UTF-8"},
		{name: "extension not UTF-8", body: spoil(structured(t, map[string]any{"partnerid": "p-7"}), `"p-7"`, "\"p-\xff\""), wantErr: "partnerid is not valid UTF-8"},
		{name: "lone high surrogate", body: spoil(structured(t, nil), `"Ana"`, `"A\ud800"`), wantErr: `data.givenName holds the escape \ud800, half of a UTF-16 surrogate pair`},
		{name: "lone low surrogate", body: spoil(structured(t, nil), `"Ana"`, `"A\udc00x"`), wantErr: `data.givenName holds the escape \udc00`},
		{name: "high surrogate before another escape", body: spoil(structured(t, nil), `"Ana"`, `"A\ud800\u0041"`), wantErr: `holds the escape \ud800`},
		{name: "surrogate pair", body: spoil(structured(t, nil), `"Ana"`, `"Ana \ud83d\ude00"`), check: func(t *testing.T, ev event.Event) {
			if !strings.Contains(string(ev.Data()), `\ud83d\ude00`) {
				t.Errorf("data %s", ev.Data())
			}
		}},
		{name: "data_base64 not UTF-8", body: structured(t, map[string]any{"data": nil, "data_base64": base64.StdEncoding.EncodeToString(
			[]byte(strings.Replace(joinedData, "Ana", "An\xffa", 1)))}), wantErr: "data.givenName is not valid UTF-8 (byte 0xff, 2 bytes into the text); send the text as UTF-8 (in data_base64)"},

		// Depth, checked before anything decodes the body.
		{name: "data nested 32 levels", body: structured(t, map[string]any{"data": nested(32)})},
		{name: "data nested 33 levels", body: structured(t, map[string]any{"data": nested(33)}),
			wantErr: "the data is nested too deeply: more than 32 levels of objects and arrays (at data.x[0][0]"},
		{name: "data nested past encoding/json's limit", body: spoil(structured(t, map[string]any{"data": json.RawMessage(`{"x":0}`)}), `{"x":0}`, string(nested(20000))), wantErr: "the data is nested too deeply: more than 32 levels"},
		{name: "extension nested", body: spoil(structured(t, nil), `"specversion":`, `"meta":`+strings.Repeat("[", 40)+strings.Repeat("]", 40)+`,"specversion":`),
			wantErr: "the body is nested too deeply: more than 32 levels of objects and arrays (at meta[0]"},

		{name: "body not JSON", body: []byte(`{"specversion":`), wantErr: "not a JSON object"},
		{name: "body empty", body: nil, wantErr: "not a JSON object"},
		{name: "body array", body: []byte(`[{}]`), wantErr: "not a JSON object"},

		// Binary mode.
		{name: "binary", header: binary(map[string][]string{"ce-partnerid": {"p-7"}, "ce-subject": {"ana.silva@fabrikam.com"}}), body: []byte(joinedData), check: func(t *testing.T, ev event.Event) {
			if ev.ID() != "hr-1" || ev.Source() != "hr/workday" || ev.Type() != events.TypeJoined || ev.Subject() != "ana.silva@fabrikam.com" || ev.DataContentType() != "application/json" {
				t.Errorf("attributes: %s", ev)
			}
			if string(ev.Data()) != joinedData {
				t.Errorf("data %s", ev.Data())
			}
			if want := map[string]any{"partnerid": "p-7"}; !maps.Equal(ev.Extensions(), want) {
				t.Errorf("extensions %#v, want %#v", ev.Extensions(), want)
			}
		}},
		{name: "binary charset", header: binary(map[string][]string{"Content-Type": {"application/json; charset=utf-8"}}), body: []byte(joinedData)},
		{name: "binary content type case", header: binary(map[string][]string{"Content-Type": {"APPLICATION/JSON"}}), body: []byte(joinedData), check: func(t *testing.T, ev event.Event) {
			if ev.DataContentType() != "application/json" {
				t.Errorf("datacontenttype %q", ev.DataContentType())
			}
		}},
		{name: "binary without content type", header: binary(map[string][]string{"Content-Type": nil}), body: []byte(joinedData), wantErr: "needs one Content-Type"},
		{name: "binary content type spelled differently", header: binary(map[string][]string{"Content-Type": nil, "content-type": {"application/json"}}), body: []byte(joinedData), wantErr: "needs one Content-Type"},
		{name: "binary XML", header: binary(map[string][]string{"Content-Type": {"application/xml"}}), body: []byte(joinedData), wantErr: "not JSON"},
		{name: "binary with structured content type", header: binary(map[string][]string{"Content-Type": {"application/cloudevents+json"}}), body: []byte(joinedData), wantErr: "not JSON"},
		{name: "binary missing id", header: binary(map[string][]string{"ce-id": nil}), body: []byte(joinedData), wantErr: "id is missing"},
		{name: "binary type mismatch", header: binary(map[string][]string{"ce-type": {events.TypeOnboarded}}), body: []byte(joinedData), wantErr: "does not match"},
		{name: "binary bad time", header: binary(map[string][]string{"ce-time": {"Wed, 01 May 2024 09:30:00 GMT"}}), body: []byte(joinedData), wantErr: "RFC 3339"},
		{name: "binary bad specversion", header: binary(map[string][]string{"ce-specversion": {"1"}}), body: []byte(joinedData), wantErr: "specversion"},
		{name: "binary ce-datacontenttype", header: binary(map[string][]string{"ce-datacontenttype": {"application/json"}}), body: []byte(joinedData), wantErr: "ce-datacontenttype"},
		{name: "binary repeated header", header: binary(map[string][]string{"ce-id": {"a", "b"}}), body: []byte(joinedData), wantErr: "2 times"},
		{name: "binary bad extension name", header: binary(map[string][]string{"ce-partner-id": {"x"}}), body: []byte(joinedData), wantErr: "lower-case"},
		{name: "binary extension named data", header: binary(map[string][]string{"ce-data": {"x"}}), body: []byte(joinedData), wantErr: "reserved"},
		{name: "binary body not an object", header: binary(nil), body: []byte(`["x"]`), wantErr: "got an array"},
		{name: "binary empty body", header: binary(nil), body: nil, wantErr: "got nothing"},
		{name: "binary data not UTF-8", header: binary(nil), body: []byte(strings.Replace(joinedData, "Silva", "Sil\x80va", 1)), wantErr: "data.surname is not valid UTF-8 (byte 0x80, 3 bytes into the text)"},
		{name: "binary data nested 32 levels", header: binary(nil), body: nested(32)},
		{name: "binary data nested 33 levels", header: binary(nil), body: nested(33), wantErr: "the data is nested too deeply: more than 32 levels"},
		{name: "binary invited", subject: events.SubjectInvited, header: binary(map[string][]string{"ce-type": {events.TypeInvited}}), body: []byte(joinedData)},
		// Header names are case-sensitive: canonicalised names are not
		// ce- headers, so the message is not binary and the body (plain
		// data) is not a structured event.
		{name: "canonicalised header names", header: map[string][]string{
			"Ce-Specversion": {"1.0"}, "Ce-Id": {"hr-1"}, "Ce-Source": {"hr"}, "Ce-Type": {events.TypeJoined}, "Content-Type": {"application/json"},
		}, body: []byte(joinedData), wantErr: "not in binary mode"},
		{name: "canonicalised header names without content type", header: map[string][]string{
			"Ce-Specversion": {"1.0"}, "Ce-Id": {"hr-1"}, "Ce-Source": {"hr"}, "Ce-Type": {events.TypeJoined},
		}, body: []byte(joinedData), wantErr: "specversion is missing"},
		{name: "structured ignores ce headers", header: map[string][]string{"ce-id": {"other"}}, body: structured(t, nil), check: func(t *testing.T, ev event.Event) {
			if ev.ID() != "hr-1" {
				t.Errorf("id %q", ev.ID())
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subject := tt.subject
			if subject == "" {
				subject = events.SubjectJoined
			}
			ev, err := events.Decode(subject, tt.header, tt.body)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Decode succeeded, want an error containing %q: %s", tt.wantErr, ev)
				}
				if !errors.Is(err, events.ErrInvalid) {
					t.Errorf("error %v does not wrap ErrInvalid", err)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if tt.check != nil {
				tt.check(t, ev)
			}
		})
	}
}

// The 64 KiB limit counts body and headers, and holds for joined input only.
func TestDecodeSize(t *testing.T) {
	padded := func(n int, typ string) []byte {
		base := structured(t, map[string]any{"type": typ, "data": json.RawMessage(`{"pad":""}`)})
		pad := strings.Repeat("x", n-len(base))
		return structured(t, map[string]any{"type": typ, "data": json.RawMessage(`{"pad":"` + pad + `"}`)})
	}
	atLimit := padded(events.MaxJoinedSize, events.TypeJoined)
	if len(atLimit) != events.MaxJoinedSize {
		t.Fatalf("test body is %d bytes", len(atLimit))
	}
	tests := []struct {
		name    string
		subject string
		header  map[string][]string
		body    []byte
		wantErr bool
	}{
		{"joined at the limit", events.SubjectJoined, nil, atLimit, false},
		{"joined one byte over", events.SubjectJoined, nil, padded(events.MaxJoinedSize+1, events.TypeJoined), true},
		{"headers count", events.SubjectJoined, map[string][]string{"X": {"y"}}, padded(events.MaxJoinedSize-1, events.TypeJoined), true},
		{"header names count", events.SubjectJoined, map[string][]string{"XY": {""}}, padded(events.MaxJoinedSize-1, events.TypeJoined), true},
		{"later events are not limited", events.SubjectInvited, nil, padded(4*events.MaxJoinedSize, events.TypeInvited), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := events.Decode(tt.subject, tt.header, tt.body)
			if tt.wantErr {
				if err == nil || !errors.Is(err, events.ErrInvalid) || !strings.Contains(err.Error(), "at most 65536") {
					t.Errorf("Decode error %v, want the size limit", err)
				}
			} else if err != nil {
				t.Errorf("Decode: %v", err)
			}
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	in, err := events.Decode(events.SubjectJoined, binary(map[string][]string{"ce-partnerid": {"p-7"}}), []byte(joinedData))
	if err != nil {
		t.Fatal(err)
	}
	header, body, err := events.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if ct := header["Content-Type"]; len(ct) != 1 || ct[0] != "application/cloudevents+json" {
		t.Errorf("Content-Type %v", ct)
	}
	out, err := events.Decode(events.SubjectJoined, header, body)
	if err != nil {
		t.Fatalf("re-decode %s: %v", body, err)
	}
	if in.String() != out.String() {
		t.Errorf("round trip changed the event:\n%s\nbecame\n%s", in, out)
	}
}

func TestEncodeRefusesInvalid(t *testing.T) {
	ev := event.New()
	ev.SetType(events.TypeJoined)
	if _, _, err := events.Encode(ev); err == nil {
		t.Error("Encode of an event without id and source succeeded")
	}
}

func TestPeekID(t *testing.T) {
	tests := []struct {
		name   string
		header map[string][]string
		body   string
		want   string
	}{
		{"header", map[string][]string{"ce-id": {"h-1"}}, `{"id":"b-1"}`, "h-1"},
		{"header blank", map[string][]string{"ce-id": {" "}}, `{"id":"b-1"}`, "b-1"},
		{"header name case-sensitive", map[string][]string{"Ce-Id": {"h-1"}}, ``, ""},
		{"structured", nil, `{"specversion":"1.0","id":" b-1 "}`, "b-1"},
		{"broken after the id", nil, `{"id":"b-1","source":`, "b-1"},
		{"broken before the id", nil, `{"source":,"id":"b-1"}`, ""},
		{"id not a string", nil, `{"id":7}`, ""},
		{"id nested only", nil, `{"data":{"id":"d-1"}}`, ""},
		{"not JSON", nil, `id=b-1`, ""},
		{"empty", nil, ``, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := events.PeekID(tt.header, []byte(tt.body)); got != tt.want {
				t.Errorf("PeekID = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPeekOnboardingID(t *testing.T) {
	tests := []struct {
		name   string
		header map[string][]string
		body   string
		want   string
	}{
		{"binary extension", map[string][]string{"ce-id": {"e-2"}, "ce-onboardingid": {"on-1"}}, `{}`, "on-1"},
		{"binary joined", map[string][]string{"ce-id": {"e-1"}}, `{}`, "e-1"},
		{"structured extension", nil, `{"id":"e-2","onboardingid":"on-1","type":42}`, "on-1"},
		{"structured joined", nil, `{"id":"e-1","specversion":"0.3"}`, "e-1"},
		{"truncated after id", nil, `{"id":"e-1","onboardingid":`, "e-1"},
		{"not JSON", nil, `<xml/>`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := events.PeekOnboardingID(tt.header, []byte(tt.body)); got != tt.want {
				t.Errorf("PeekOnboardingID = %q, want %q", got, tt.want)
			}
		})
	}
}
