package events

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// traceparent is a W3C trace context (version 00), the value of the
// CloudEvents distributed-tracing extension.
type traceparent struct {
	traceID  [16]byte
	parentID [8]byte
	flags    byte
}

func (t traceparent) String() string {
	return "00-" + hex.EncodeToString(t.traceID[:]) + "-" + hex.EncodeToString(t.parentID[:]) + "-" + hex.EncodeToString([]byte{t.flags})
}

// parseTraceparent follows the W3C parsing rules: lower-case hex, no all-zero
// ids, version ff invalid, and a later version may append fields, which are
// dropped because only version 00 is understood.
func parseTraceparent(s string) (traceparent, bool) {
	var t traceparent
	if len(s) < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return t, false
	}
	version := s[:2]
	if !isLowerHex(version) || version == "ff" || version == "00" && len(s) != 55 || len(s) > 55 && s[55] != '-' {
		return t, false
	}
	var flags [1]byte
	if !decodeHex(t.traceID[:], s[3:35]) || !decodeHex(t.parentID[:], s[36:52]) || !decodeHex(flags[:], s[53:55]) {
		return t, false
	}
	if t.traceID == [16]byte{} || t.parentID == [8]byte{} {
		return t, false
	}
	t.flags = flags[0]
	return t, true
}

func decodeHex(dst []byte, s string) bool {
	if !isLowerHex(s) {
		return false
	}
	_, err := hex.Decode(dst, []byte(s))
	return err == nil
}

func isLowerHex(s string) bool {
	return strings.Trim(s, "0123456789abcdef") == ""
}

// child is the span of the step that emits the event with id outID. Its id
// is derived from outID, so a redelivered input reports the same span.
func (t traceparent) child(outID string) traceparent {
	t.parentID = derive8("span\x00" + outID)
	return t
}

// newTrace starts a trace for an onboarding that arrived without one. The
// trace id is derived from the onboarding id so that every step, and every
// redelivery, lands in the same trace; sampled, so it is recorded.
func newTrace(onboardingID, outID string) traceparent {
	sum := sha256.Sum256([]byte("trace\x00" + onboardingID))
	var t traceparent
	copy(t.traceID[:], sum[:])
	if t.traceID == [16]byte{} {
		t.traceID[15] = 1
	}
	t.parentID = derive8("span\x00" + outID)
	t.flags = 0x01
	return t
}

// derive8 derives a non-zero 8-byte span id.
func derive8(seed string) [8]byte {
	sum := sha256.Sum256([]byte(seed))
	var id [8]byte
	copy(id[:], sum[:])
	if id == [8]byte{} {
		id[7] = 1
	}
	return id
}
