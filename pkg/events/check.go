package events

import (
	"net/url"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// event checks w against docs/events.md and builds the event. wantType is the
// type that subject carries: a type on the wrong subject would be consumed by
// the wrong step.
func (w wire) event(subject, wantType string) (event.Event, error) {
	ev := event.New()
	for _, check := range []func(*event.Event) error{
		w.text,
		func(ev *event.Event) error { return w.requiredAttributes(ev, subject, wantType) },
		w.optionalAttributes,
		w.dataAndExtensions,
	} {
		if err := check(&ev); err != nil {
			return event.Event{}, err
		}
	}
	if err := ev.Validate(); err != nil {
		return event.Event{}, invalidf("%v", err)
	}
	return ev, nil
}

// text holds every attribute to the CloudEvents String type first, so that
// later messages can quote values safely.
func (w wire) text(*event.Event) error {
	for _, name := range contextAttributes {
		if v, ok := w.attrs[name]; ok {
			if p := checkText(v); p != "" {
				return invalidf("attribute %s %s", name, p)
			}
		}
	}
	return nil
}

func (w wire) requiredAttributes(ev *event.Event, subject, wantType string) error {
	switch sv, ok := w.attrs["specversion"]; {
	case !ok:
		return invalidf(`specversion is missing; set it to "1.0"`)
	case sv != event.CloudEventsVersionV1:
		return invalidf(`specversion is %s; guestflow accepts CloudEvents "1.0" only`, quote(sv))
	}
	id := w.attrs["id"]
	if strings.TrimSpace(id) == "" {
		return invalidf("id is missing or blank; give every event a unique id")
	}
	ev.SetID(id)
	src := w.attrs["source"]
	if strings.TrimSpace(src) == "" {
		return invalidf(`source is missing or blank; give the publishing system as a URI reference, e.g. "hr/workday"`)
	}
	if ev.SetSource(src); ev.FieldErrors["source"] != nil || ev.Source() == "" {
		return invalidf("source %s is not a URI reference", quote(src))
	}
	switch typ := w.attrs["type"]; {
	case typ == "":
		return invalidf("type is missing; events on %s must have type %s", subject, wantType)
	case typ != wantType:
		return invalidf("type %s does not match subject %s, which carries %s only", quote(typ), subject, wantType)
	}
	ev.SetType(wantType)
	return nil
}

// dataAndExtensions sets the data, which every step decodes into a struct,
// and the extensions, which are carried through whatever they are.
func (w wire) dataAndExtensions(ev *event.Event) error {
	if !isObject(w.data) {
		return invalidf("data must be a JSON object; got %s", describe(w.data))
	}
	ev.DataEncoded = w.data
	for _, name := range sortedKeys(w.ext) {
		if p := checkExtensionName(name); p != "" {
			return invalidf("%s", p)
		}
		if s, ok := w.ext[name].(string); ok {
			if p := checkText(s); p != "" {
				return invalidf("extension %s %s", name, p)
			}
		}
		if ev.SetExtension(name, w.ext[name]); ev.FieldErrors["extension:"+name] != nil {
			return invalidf("extension %s: %v", name, ev.FieldErrors["extension:"+name])
		}
	}
	return nil
}

// optionalAttributes checks and sets subject, time, datacontenttype and
// dataschema, each only when present.
func (w wire) optionalAttributes(ev *event.Event) error {
	if s, ok := w.attrs["subject"]; ok {
		if strings.TrimSpace(s) == "" {
			return invalidf("subject is blank; leave it out or give the user's email address")
		}
		ev.SetSubject(s)
	}
	if s, ok := w.attrs["time"]; ok {
		t, err := parseTime(s)
		if err != nil {
			return invalidf(`time %s is not an RFC 3339 timestamp like "2024-05-01T09:30:00Z"`, quote(s))
		}
		ev.SetTime(t)
	}
	if s, ok := w.attrs["datacontenttype"]; ok {
		mt := mediaType(s)
		if !isJSON(mt) {
			return invalidf("the data's content type %s is not JSON; send the data as %s", quote(s), event.ApplicationJSON)
		}
		// Stored bare and lower-case: the sdk's DataAs looks codecs up by
		// exact media type, so "Application/JSON" would fail in every step.
		ev.SetDataContentType(mt)
	}
	if s, ok := w.attrs["dataschema"]; ok {
		if u, err := url.Parse(s); err != nil || !u.IsAbs() {
			return invalidf("dataschema %s is not an absolute URI", quote(s))
		}
		ev.SetDataSchema(s)
	}
	return nil
}

// parseTime accepts RFC 3339 with years the sdk can write back: it renders
// time in UTC, and a year outside 0000–9999 there is not RFC 3339.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, err
	}
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return time.Time{}, &time.ParseError{Value: s, Message: ": year out of range"}
	}
	return t, nil
}
