package events

import (
	"fmt"
	"maps"
	"slices"
	"unicode/utf8"
)

// contextAttributes are the CloudEvents 1.0 attributes besides data; any
// other top-level member or ce- header is an extension.
var contextAttributes = []string{"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema"}

// wire is a CloudEvent as read off a message, before any check. Both modes
// fill one, so that both get exactly the same checks.
type wire struct {
	attrs map[string]string // context attributes that are present
	ext   map[string]any    // extensions: string, bool or int32
	data  []byte
}

func newWire() wire {
	return wire{attrs: map[string]string{}, ext: map[string]any{}}
}

// checkText enforces the CloudEvents String type: valid UTF-8 without control
// characters. Anything else would not survive a round trip through JSON.
func checkText(s string) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for _, r := range s {
		if r < 0x20 || 0x7f <= r && r <= 0x9f {
			return fmt.Sprintf("contains the control character %U", r)
		}
	}
	return ""
}

// checkExtensionName enforces CloudEvents naming. The sdk would lower-case an
// upper-case name, so it could not be carried through unchanged; "data" would
// collide with the data member when the event is written in structured mode.
func checkExtensionName(name string) string {
	if name == "data" {
		return `"data" is reserved and cannot be an extension`
	}
	if name == "" {
		return "an extension has an empty name"
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return fmt.Sprintf("attribute name %s is not valid: CloudEvents names are lower-case ASCII letters and digits", quote(name))
		}
	}
	return ""
}

// sortedKeys makes error messages deterministic when several things are wrong.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
