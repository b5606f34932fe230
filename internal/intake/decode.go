package intake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/guestflow/guestflow/functions/invite"
	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/pkg/events"
)

// MaxBatch is the most events one batched request may hold.
const MaxBatch = 100

// mode is a request's CloudEvents content mode.
type mode int

const (
	modeStructured mode = iota + 1
	modeBinary
	modeBatch
)

// message is one accepted event as it is published: exactly the headers
// and body the invite step will decode, and the event they decode to.
type message struct {
	header map[string][]string
	body   []byte
	ev     event.Event
}

// problem is why one event was refused: its words are those of the dead
// letter the event would have become, so a sender fixes it the same way
// whichever door it came through.
type problem struct {
	// Index is the event's place in a batch, from 0; absent for a
	// single event.
	Index *int   `json:"index,omitempty"`
	ID    string `json:"id,omitempty"`
	// Reason is the dead letter's reason code, invalid_event.
	Reason string `json:"reason"`
	Error  string `json:"error"`
	// Fields are the joined data's problems, one per field.
	Fields []fieldProblem `json:"fields,omitempty"`

	tooLarge bool
}

type fieldProblem struct {
	Field   string `json:"field"`
	Problem string `json:"problem"`
}

// requestError is an answer other than 202, with its JSON body.
type requestError struct {
	status int
	body   any
}

func errorf(status int, format string, args ...any) *requestError {
	return &requestError{status: status, body: errorBody{Error: fmt.Sprintf(format, args...)}}
}

type errorBody struct {
	Error string `json:"error"`
}

// requestMode tells the content mode the way the CloudEvents HTTP binding
// does (the sdk's own reading of it): structured or batched by the
// Content-Type's event format, else binary when there is a ce-specversion
// header. A body that is JSON without ce-specversion is read as binary
// too, so the answer can say which header is missing; anything else is
// not a joined event at all (415).
func requestMode(h http.Header) (mode, *requestError) {
	ct := h.Get("Content-Type")
	switch cehttp.NewMessage(h, nil).ReadEncoding() {
	case binding.EncodingStructured:
		if mediaType(ct) == event.ApplicationCloudEventsJSON {
			return modeStructured, nil
		}
	case binding.EncodingBatch:
		return modeBatch, nil
	case binding.EncodingBinary:
		if isJSON(mediaType(ct)) {
			return modeBinary, nil
		}
		return 0, errorf(http.StatusUnsupportedMediaType,
			"a binary-mode joined event carries its data as the body, so its Content-Type must be %s, not %q",
			event.ApplicationJSON, ct)
	default:
		if isJSON(mediaType(ct)) {
			return modeBinary, nil
		}
	}
	if ct == "" {
		return 0, errorf(http.StatusUnsupportedMediaType, "no Content-Type: %s", modes)
	}
	return 0, errorf(http.StatusUnsupportedMediaType, "Content-Type %q is not a joined event: %s", ct, modes)
}

const modes = "send " + event.ApplicationCloudEventsJSON + " (structured), " +
	event.ApplicationCloudEventsBatchJSON + " (a JSON array of structured events), or " +
	event.ApplicationJSON + " with ce-* headers (binary)"

// decode turns a request's body into the messages to publish. Each event
// goes through the invite step's own checks, events.Decode and
// invite.Check, on the very headers and body that will be published, so
// an event accepted here is one the step accepts, and one refused here is
// refused in its dead letter's words. A batch is all or nothing: one bad
// event and none is published.
func decode(m mode, h http.Header, body []byte) ([]message, *requestError) {
	switch m {
	case modeStructured:
		return single(structuredHeader(h), body)
	case modeBinary:
		header, err := binaryHeader(h)
		if err != nil {
			return nil, err
		}
		return single(header, body)
	}
	items, err := splitBatch(body)
	if err != nil {
		return nil, err
	}
	var (
		msgs     []message
		problems []problem
		tooLarge bool
	)
	for i, raw := range items {
		msg, p := check(map[string][]string{"Content-Type": {event.ApplicationCloudEventsJSON}}, raw)
		if p != nil {
			p.Index = &i
			tooLarge = tooLarge || p.tooLarge
			problems = append(problems, *p)
			continue
		}
		msgs = append(msgs, msg)
	}
	if len(problems) == 0 {
		return msgs, nil
	}
	status := http.StatusBadRequest
	if tooLarge {
		status = http.StatusRequestEntityTooLarge
	}
	return nil, &requestError{status: status, body: batchProblems{
		Error:  fmt.Sprintf("%d of the batch's %d events cannot be accepted, so none was published; fix them and send the batch again", len(problems), len(items)),
		Events: problems,
	}}
}

type batchProblems struct {
	Error  string    `json:"error"`
	Events []problem `json:"events"`
}

func single(header map[string][]string, body []byte) ([]message, *requestError) {
	msg, p := check(header, body)
	if p == nil {
		return []message{msg}, nil
	}
	status := http.StatusBadRequest
	if p.tooLarge {
		status = http.StatusRequestEntityTooLarge
	}
	return nil, &requestError{status: status, body: p}
}

// check is the invite step's validation of one message.
func check(header map[string][]string, body []byte) (message, *problem) {
	too := events.MessageSize(header, body) > events.MaxJoinedSize
	ev, err := events.Decode(events.SubjectJoined, header, body)
	if err == nil {
		_, err = invite.Check(ev)
	}
	if err != nil {
		p := &problem{ID: events.PeekID(header, body), Reason: failure.InvalidEvent, Error: oneLine(err.Error()), tooLarge: too}
		for _, fe := range fieldErrors(err) {
			p.Fields = append(p.Fields, fieldProblem{Field: fe.Field, Problem: fe.Problem})
		}
		return message{}, p
	}
	return message{header: header, body: body, ev: ev}, nil
}

// structuredHeader is what a structured event is published with: its
// Content-Type alone. The ce-* headers the HTTP binding allows beside a
// structured event are not part of it.
func structuredHeader(h http.Header) map[string][]string {
	return map[string][]string{"Content-Type": h.Values("Content-Type")}
}

// binaryHeader maps a binary-mode request's headers to the NATS headers
// the event is published with: Content-Type, and every ce-* header under
// its lower-case name (HTTP header names are case-insensitive; NATS
// header names are not, and pkg/events reads them lower-case) with its
// value unescaped as the HTTP binding prescribes. A NATS header value
// loses the white space at its ends in transit, so the unescaped value is
// trimmed here, before it is checked, and the step checks the same. No
// other header goes along: Authorization and the rest stay here.
func binaryHeader(h http.Header) (map[string][]string, *requestError) {
	out := map[string][]string{}
	if ct := h.Values("Content-Type"); len(ct) > 0 {
		out["Content-Type"] = ct
	}
	for name, values := range h {
		if len(name) < 3 || !strings.EqualFold(name[:3], "ce-") {
			continue
		}
		key := "ce-" + asciiLower(name[3:])
		for _, v := range values {
			u, err := unescapeHeaderValue(v)
			if err != nil {
				return nil, errorf(http.StatusBadRequest, "%v: header %s %v", events.ErrInvalid, key, err)
			}
			out[key] = append(out[key], strings.Trim(u, " \t"))
		}
	}
	return out, nil
}

// unescapeHeaderValue undoes the HTTP binding's encoding of a ce-* value
// (section 3.1.3.2): a double-quoted string is unquoted first, then one
// round of percent-decoding is done. Whether the result is UTF-8 is for
// pkg/events to say, as for any attribute.
func unescapeHeaderValue(v string) (string, error) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		var b strings.Builder
		inner := v[1 : len(v)-1]
		for i := 0; i < len(inner); i++ {
			c := inner[i]
			if c == '\\' {
				if i+1 == len(inner) {
					return "", errors.New("ends its quoted string with a lone backslash")
				}
				i++
				c = inner[i]
			} else if c == '"' {
				return "", errors.New("has an unescaped double quote inside its quoted string")
			}
			b.WriteByte(c)
		}
		v = b.String()
	}
	if !strings.Contains(v, "%") {
		return v, nil
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i+2 >= len(v) || !isHex(v[i+1]) || !isHex(v[i+2]) {
			return "", errors.New("has a % that is not followed by two hex digits; header values are percent-encoded, so write a % as %25")
		}
		b.WriteByte(unhex(v[i+1])<<4 | unhex(v[i+2]))
		i += 2
	}
	return b.String(), nil
}

// splitBatch reads a batch: a JSON array of events, each kept as the exact
// bytes it was sent as, since those are what is published.
func splitBatch(body []byte) ([]json.RawMessage, *requestError) {
	notArray := errorf(http.StatusBadRequest, "%v: a batch (%s) must be a JSON array of structured CloudEvents", events.ErrInvalid, event.ApplicationCloudEventsBatchJSON)
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, notArray
	}
	var items []json.RawMessage
	for dec.More() {
		if len(items) == MaxBatch {
			return nil, errorf(http.StatusBadRequest, "%v: a batch holds at most %d events; send the rest in another batch", events.ErrInvalid, MaxBatch)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, errorf(http.StatusBadRequest, "%v: event %d of the batch is not valid JSON: %v", events.ErrInvalid, len(items), err)
		}
		items = append(items, raw)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim(']') {
		return nil, notArray
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errorf(http.StatusBadRequest, "%v: there is more after the batch's closing ]", events.ErrInvalid)
	}
	if len(items) == 0 {
		return nil, errorf(http.StatusBadRequest, "%v: the batch is empty; send at least one event", events.ErrInvalid)
	}
	return items, nil
}

// fieldErrors collects every FieldError in err's tree (ParseJoined joins
// one per field).
func fieldErrors(err error) []*events.FieldError {
	var out []*events.FieldError
	var walk func(error)
	walk = func(err error) {
		if fe, ok := err.(*events.FieldError); ok {
			out = append(out, fe)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			if e := u.Unwrap(); e != nil {
				walk(e)
			}
		}
	}
	walk(err)
	return out
}

// oneLine folds a multi-line error (errors.Join) into one line, as the
// dead letter's Guestflow-Error header does.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// mediaType is a Content-Type's type/subtype, lower-case, without
// parameters; only ASCII is folded.
func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return asciiLower(strings.TrimSpace(ct))
}

// isJSON is pkg/events' rule for the data's media type.
func isJSON(mt string) bool { return mt == event.ApplicationJSON || mt == event.TextJSON }

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c - 'A' + 'a'
		}
	}
	return string(b)
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
