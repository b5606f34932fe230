package events

import (
	"bytes"
	"encoding/json"
	"strings"
)

// PeekID returns the event id of a message that may be broken, or "". The
// ce-id header wins; otherwise the body is read as far as it is well-formed,
// so a truncated or half-valid structured event still yields its id.
func PeekID(header map[string][]string, body []byte) string {
	return peek(header, body, "id")
}

// PeekOnboardingID returns the onboarding id of a message that may be
// broken: its onboardingid extension, else its id (a joined event is its
// own onboarding), else "". A dead letter of an invalid event still needs
// it, so operators can find the onboarding it belongs to.
func PeekOnboardingID(header map[string][]string, body []byte) string {
	if id := peek(header, body, ExtOnboardingID); id != "" {
		return id
	}
	return PeekID(header, body)
}

// peek reads attribute name from its ce- header or, failing that, from a
// structured body.
func peek(header map[string][]string, body []byte, name string) string {
	if v := header["ce-"+name]; len(v) > 0 && strings.TrimSpace(v[0]) != "" {
		return strings.TrimSpace(v[0])
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	found := ""
	for dec.More() {
		t, err := dec.Token()
		key, ok := t.(string)
		if err != nil || !ok {
			break
		}
		var v json.RawMessage
		if dec.Decode(&v) != nil {
			break
		}
		var s string
		if key == name && json.Unmarshal(v, &s) == nil {
			found = strings.TrimSpace(s) // the last wins, as in Decode
		}
	}
	return found
}
