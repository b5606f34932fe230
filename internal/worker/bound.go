package worker

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
)

// Bounds on what a dead letter copies from its input. The input is
// whatever a publisher sent; without bounds, one input with a huge header
// or id would be copied whole into every dead letter and every log line of
// every retry, and could push the dead letter past the broker's max
// payload.
const (
	// MaxHeaderValue bounds each value copied from the input, the
	// onboarding id included, in headers and in log attributes.
	MaxHeaderValue = 1024
	// MaxErrorValue bounds Guestflow-Error (and logged errors), which may
	// quote the input.
	MaxErrorValue = 4096
	// MaxCopiedHeaders and MaxCopiedHeaderBytes bound the input's headers
	// copied into a dead letter: values beyond either are dropped and
	// counted in Guestflow-Headers-Dropped.
	MaxCopiedHeaders     = 64
	MaxCopiedHeaderBytes = 16 * 1024
	// maxHeaderName is the longest header name copied; a longer one is
	// dropped, since a name cut short would be another header.
	maxHeaderName = 256
)

// credentialHeaders are never copied into a dead letter: a dead letter is
// kept until replayed, listed and shown to operators, and a credential
// that came along with an input must not outlive it there.
var credentialHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie"}

// clip bounds s to n bytes. A longer s keeps a prefix, cut at a character
// boundary, and ends in its length and the start of its SHA-256, so that
// it stays recognisable and two long values sharing the prefix stay apart:
// "hr-1001aaaa…[409600 bytes, sha256 0f1e2d3c4b5a6978]".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	tail := fmt.Sprintf("…[%d bytes, sha256 %s]", len(s), hex.EncodeToString(sum[:8]))
	keep := max(n-len(tail), 0)
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	return s[:keep] + tail
}

// copyHeaders returns the input's headers a dead letter keeps, in name
// order so that the bounds cut the same headers on every retry, and how
// many values it dropped for the bounds. Control headers (Nats-Msg-Id,
// Nats-Expected-…) belonged to the input's own publish, and a replayed
// input still carries the previous failure's Guestflow- headers; neither
// belongs to this dead letter, and credentials belong in none.
func copyHeaders(in nats.Header) (nats.Header, int) {
	names := make([]string, 0, len(in))
	for k := range in {
		names = append(names, k)
	}
	slices.Sort(names)
	out := nats.Header{}
	values, size, dropped := 0, 0, 0
	for _, k := range names {
		if hasPrefixFold(k, "Nats-") || hasPrefixFold(k, "Guestflow-") ||
			slices.ContainsFunc(credentialHeaders, func(c string) bool { return strings.EqualFold(k, c) }) {
			continue
		}
		for _, v := range in[k] {
			v = clip(v, MaxHeaderValue)
			cost := len(k) + len(v) + 4 // "k: v\r\n", as nats.go encodes it
			if len(k) > maxHeaderName || values == MaxCopiedHeaders || size+cost > MaxCopiedHeaderBytes {
				dropped++
				continue
			}
			out[k] = append(out[k], v)
			values++
			size += cost
		}
	}
	return out, dropped
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
