package events

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"
)

// MaxJoinedSize bounds a joined message, body plus every header name and
// value. Joined events come from outside, and the limit keeps one bad
// publisher from filling the stream; later events are guestflow's own.
const MaxJoinedSize = 64 << 10

// Decode turns a NATS message into a CloudEvent and checks it against
// docs/events.md. A message is in binary mode exactly when it has a
// ce-specversion header; otherwise its body must be a structured event. The
// type must be the one its subject carries, so a step never acts on an event
// meant for another. Unknown extensions are kept so they can be carried
// through. Every string in the body must be UTF-8 and the data may nest at
// most MaxDepth levels (see scanJSON). Every error wraps ErrInvalid: no
// retry can fix the message.
//
// Decode does not check the joined data itself; see ParseJoined.
func Decode(subject string, header map[string][]string, body []byte) (event.Event, error) {
	want, ok := typeOf(subject)
	if !ok {
		return event.Event{}, invalidf("subject %s carries no guestflow event", quote(subject))
	}
	if subject == SubjectJoined {
		if n := MessageSize(header, body); n > MaxJoinedSize {
			return event.Event{}, invalidf("the message is %d bytes (body plus headers); a joined event may be at most %d", n, MaxJoinedSize)
		}
	}
	_, binary := header["ce-specversion"]
	// A structured body wraps the data in the event: one level more.
	root, limit := "", MaxDepth+1
	if binary {
		root, limit = "data", MaxDepth
	}
	if p := scanJSON(body, root, limit); p != nil {
		return event.Event{}, invalidf("%s", p.text())
	}
	var w wire
	var err error
	if binary {
		w, err = fromHeaders(header, body)
	} else {
		w, err = fromBody(header, body)
	}
	if err != nil {
		return event.Event{}, err
	}
	return w.event(subject, want)
}

// Encode renders ev in structured mode, the one mode workers publish in.
func Encode(ev event.Event) (header map[string][]string, body []byte, err error) {
	if err := ev.Validate(); err != nil {
		return nil, nil, fmt.Errorf("events: encode: %w", err)
	}
	var buf bytes.Buffer
	if err := event.WriteJson(&ev, &buf); err != nil {
		return nil, nil, fmt.Errorf("events: encode: %w", err)
	}
	// WriteJson trusts the event; an extension value set by hand could still
	// produce something no consumer can read.
	if !json.Valid(buf.Bytes()) {
		return nil, nil, fmt.Errorf("events: encode: event %s does not render as valid JSON", ev.ID())
	}
	return map[string][]string{"Content-Type": {event.ApplicationCloudEventsJSON}}, buf.Bytes(), nil
}

// typeOf is the inverse of Subject.
func typeOf(subject string) (string, bool) {
	for typ, s := range subjects {
		if s == subject {
			return typ, true
		}
	}
	return "", false
}

// MessageSize counts what MaxJoinedSize bounds: the body plus every header
// name and value. A header name is counted once per value because that is
// how often it travels.
func MessageSize(header map[string][]string, body []byte) int {
	n := len(body)
	for name, values := range header {
		n += len(name) * max(len(values), 1)
		for _, v := range values {
			n += len(v)
		}
	}
	return n
}
