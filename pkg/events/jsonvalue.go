package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// kind names the JSON type of raw the way an error message should, so a
// publisher who sent "true" for a boolean learns that quotes were the problem.
func kind(raw json.RawMessage) string {
	b := bytes.TrimLeft(raw, " \t\r\n")
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// isNull reports whether raw is JSON null, which the contract treats as an
// absent field.
func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// isObject reports whether b is exactly one JSON object: event data must be
// one, because every step decodes it into a struct.
func isObject(b []byte) bool {
	t := bytes.TrimLeft(b, " \t\r\n")
	return len(t) > 0 && t[0] == '{' && json.Valid(b)
}

// describe names what a payload that should have been an object is.
func describe(data []byte) string {
	switch {
	case len(bytes.TrimSpace(data)) == 0:
		return "nothing"
	case !json.Valid(data):
		return "invalid JSON"
	}
	return kind(data)
}

// quote renders a user's value for an error message, shortened so that a
// 64 KiB field cannot blow up a dead letter's Guestflow-Error header.
func quote(s string) string {
	const max = 64
	if utf8.RuneCountInString(s) <= max {
		return fmt.Sprintf("%q", s)
	}
	r := []rune(s)
	return fmt.Sprintf("%q…", string(r[:max]))
}
