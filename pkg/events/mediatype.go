package events

import (
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
)

// mediaType returns the type/subtype of a Content-Type value, lower-cased and
// without parameters, because the contract compares media types and a
// "; charset=utf-8" must not matter. Only ASCII is folded: strings.ToLower
// would turn a lookalike such as the Kelvin sign into a plain "k".
func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	b := []byte(strings.TrimSpace(ct))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c - 'A' + 'a'
		}
	}
	return string(b)
}

// isJSON reports whether data of media type mt is JSON. The list is the
// sdk's own: it writes data of any other type back as a JSON string, which
// would no longer be the object every step decodes.
func isJSON(mt string) bool {
	return mt == event.ApplicationJSON || mt == event.TextJSON
}
