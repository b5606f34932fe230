package events

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
)

// fromBody reads a structured-mode message. It parses with encoding/json
// rather than the sdk's lenient reader so that what is accepted here is
// exactly what the contract says, and the errors can say what to fix.
func fromBody(header map[string][]string, body []byte) (wire, error) {
	if ct, ok := header["Content-Type"]; ok {
		if len(ct) != 1 {
			return wire{}, invalidf("Content-Type is given %d times; give it once", len(ct))
		}
		if mediaType(ct[0]) != event.ApplicationCloudEventsJSON {
			return wire{}, invalidf("Content-Type %s is not %s, and without a ce-specversion header the message is not in binary mode either; publish a structured event or add the ce-* headers",
				quote(ct[0]), event.ApplicationCloudEventsJSON)
		}
	}
	var members map[string]json.RawMessage
	if !isObject(body) || json.Unmarshal(body, &members) != nil {
		return wire{}, invalidf("the body is not a JSON object; expected a structured CloudEvent, or ce-* headers for binary mode")
	}
	w := newWire()
	for _, name := range sortedKeys(members) {
		raw := members[name]
		if isNull(raw) {
			continue
		}
		switch {
		case name == "data":
			w.data = raw
		case name == "data_base64":
			data, err := base64Data(raw, members["data"])
			if err != nil {
				return wire{}, err
			}
			w.data = data
		case slices.Contains(contextAttributes, name):
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return wire{}, invalidf("attribute %s must be a JSON string, not %s", name, kind(raw))
			}
			w.attrs[name] = s
		default:
			v, err := extensionValue(name, raw)
			if err != nil {
				return wire{}, err
			}
			w.ext[name] = v
		}
	}
	return w, nil
}

// base64Data decodes data_base64. A publisher may legitimately send its JSON
// that way; the event then carries it as plain data like any other.
func base64Data(raw, data json.RawMessage) ([]byte, error) {
	if data != nil && !isNull(data) {
		return nil, invalidf("the event has both data and data_base64; send the JSON object as data only")
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil, invalidf("data_base64 must be a base64 string, not %s", kind(raw))
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, invalidf("data_base64 is not valid base64: %v", err)
	}
	if p := scanJSON(b, "data", MaxDepth); p != nil {
		return nil, invalidf("%s (in data_base64)", p.text())
	}
	return b, nil
}

// extensionValue converts a JSON member to a CloudEvents extension value.
// Objects and arrays have no CloudEvents type, so they cannot be carried.
func extensionValue(name string, raw json.RawMessage) (any, error) {
	switch kind(raw) {
	case "a string":
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s, nil
		}
	case "a boolean":
		var b bool
		if json.Unmarshal(raw, &b) == nil {
			return b, nil
		}
	case "a number":
		n, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 32)
		if err != nil {
			return nil, invalidf("extension %s is %s; CloudEvents integers are whole numbers from -2147483648 to 2147483647", name, quote(string(raw)))
		}
		return int32(n), nil
	}
	return nil, invalidf("extension %s must be a string, a boolean or an integer, not %s", name, kind(raw))
}
