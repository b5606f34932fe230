package events

import (
	"slices"
	"strings"
)

// fromHeaders reads a binary-mode message: attributes and extensions from
// the ce- headers (names exactly as written, never canonicalised), data from
// the body, the data's type from Content-Type.
func fromHeaders(header map[string][]string, body []byte) (wire, error) {
	w := newWire()
	for _, name := range sortedKeys(header) {
		attr, ok := strings.CutPrefix(name, "ce-")
		if !ok {
			continue
		}
		values := header[name]
		if len(values) != 1 {
			return wire{}, invalidf("header %s is given %d times; give it once", name, len(values))
		}
		switch {
		case attr == "datacontenttype":
			return wire{}, invalidf("binary mode has no ce-datacontenttype header; give the data's type as Content-Type: application/json")
		case slices.Contains(contextAttributes, attr):
			w.attrs[attr] = values[0]
		default:
			w.ext[attr] = values[0]
		}
	}
	ct := header["Content-Type"]
	if len(ct) != 1 {
		return wire{}, invalidf("a binary-mode message needs one Content-Type header, application/json, for its data")
	}
	w.attrs["datacontenttype"] = ct[0]
	w.data = body
	return w, nil
}
