package textsafe_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode"

	"github.com/guestflow/guestflow/internal/textsafe"
)

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"ana@fabrikam.com", "ana@fabrikam.com"},
		{"Zoë Ñúñez 山田 \\ backslash", "Zoë Ñúñez 山田 \\ backslash"},
		{"\x1b[2J\x1b[31mfake", `\x1b[2J\x1b[31mfake`},
		{"line\r\nnext\ttab", `line\r\nnext\ttab`},
		{"bell\a del\x7f nul\x00", `bell\a del\x7f nul\x00`},
		{"csi\u009b2J nel\u0085", `csi\u009b2J nel\u0085`},
		{"evil\u202egnp.exe", `evil\u202egnp.exe`},
		{"zero\u200bwidth \ufeffbom \u2066isolate\u2069", `zero\u200bwidth \ufeffbom \u2066isolate\u2069`},
		{"sep\u2028par\u2029", `sep\u2028par\u2029`},
		{"tag\U000e0041", `tag\U000e0041`},
		{"bad \xff byte \xc3", `bad \xff byte \xc3`},
	} {
		if got := textsafe.Escape(tc.in); got != tc.want {
			t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestEscapeLeavesNothingUnsafe tries every code point up to the last
// format characters (the tags of plane 14): an unsafe one comes out
// escaped, a safe one as it is.
func TestEscapeLeavesNothingUnsafe(t *testing.T) {
	for r := rune(0); r <= 0xe0fff; r++ {
		in := "a" + string(r) + "b"
		got := textsafe.Escape(in)
		unsafe := unicode.In(r, unicode.Cc, unicode.Cf) || r == '\u2028' || r == '\u2029'
		if unsafe == (got == in) {
			t.Fatalf("Escape(%U) = %q", r, got)
		}
		for _, c := range got {
			if unicode.In(c, unicode.Cc, unicode.Cf) {
				t.Fatalf("Escape(%U) = %q keeps %U", r, got, c)
			}
		}
	}
}

func TestURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://user:secret@nats.internal:4222", "nats://user:xxxxx@nats.internal:4222"},
		{"nats://s3cr3t-token@nats.internal:4222", "nats://xxxxx@nats.internal:4222"},
		{"tls://a:b@n1:4222, tls://c:d@n2:4222,nats://n3", "tls://a:xxxxx@n1:4222, tls://c:xxxxx@n2:4222,nats://n3"},
		{"nats://user:p@ss@host:4222", "nats://user:xxxxx@host:4222"},
		{"user:secret@127.0.0.1:4222", "xxxxx@127.0.0.1:4222"},
		{"nats://user:se%zzcret@host:4222", "nats://xxxxx@host:4222"},
		{"nats://u:pa/ss@host:4222", "nats://xxxxx@host:4222"},
		{"nats://u:secret@[::1", "nats://xxxxx@[::1"},
		{"https://user:pw@graph.example/v1.0", "https://user:xxxxx@graph.example/v1.0"},
		{"", ""},
	} {
		got := textsafe.URL(tc.in)
		if got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
		for _, secret := range []string{"secret", "s3cr3t", "p@ss", "pw", ":b@", ":d@", "pa/ss"} {
			if strings.Contains(tc.in, secret) && strings.Contains(got, secret) {
				t.Errorf("URL(%q) = %q still shows %q", tc.in, got, secret)
			}
		}
	}
}

func TestURLError(t *testing.T) {
	for raw, secret := range map[string]string{"nats://user:secret@host:bad": "secret",
		"nats://user:se%zzcret@127.0.0.1:4222": "%zz", "nats://u:pa/ss@127.0.0.1:4222": ":pa"} {
		_, perr := url.Parse(raw)
		err := textsafe.URLError(perr)
		if err == nil || strings.Contains(err.Error(), secret) ||
			!strings.Contains(err.Error(), "nats://xxxxx@") || !strings.Contains(err.Error(), "URL-encoded") {
			t.Errorf("URLError(%v) = %v", perr, err)
		}
	}
	_, perr := url.Parse("nats://host:bad")
	if err := textsafe.URLError(perr); err != perr {
		t.Errorf("a URL without credentials: %v, want %v unchanged", err, perr)
	}
	other := errors.New("nats: no servers available for connection")
	if err := textsafe.URLError(other); err != other {
		t.Errorf("another error: %v", err)
	}
}
