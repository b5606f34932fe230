// Package textsafe makes text from outside safe to print: event fields and
// dead-letter headers that anyone who can publish may have filled with
// terminal escape sequences, and configured URLs that may carry credentials.
package textsafe

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape returns s with every character that could change what a terminal
// shows written as a Go-style escape instead: control characters (Unicode
// Cc: ESC, CR, tab, newline, DEL, C1 controls such as U+009B, the 8-bit
// CSI), format characters (Cf: bidi overrides such as U+202E, zero-width
// characters, tags), the line and paragraph separators U+2028 and U+2029,
// and bytes that are not UTF-8. "\x1b[2J" comes out as `\x1b[2J`, U+202E as
// `\u202e`, a stray 0xff byte as `\xff`.
//
// Everything else, including backslashes, is left as it is, so ordinary text
// reads unchanged; the price is that a value holding the six characters
// `\x1b[2J` prints the same as one holding the escape itself, which is
// harmless for a person reading a table.
func Escape(s string) string {
	if !strings.ContainsFunc(s, unsafe) && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x`)
			b.WriteString(hex2(s[0]))
		case unsafe(r):
			b.WriteString(escapeRune(r))
		default:
			b.WriteString(s[:size])
		}
		s = s[size:]
	}
	return b.String()
}

// unsafe reports whether r is a character Escape writes as an escape.
func unsafe(r rune) bool {
	return unicode.In(r, unicode.Cc, unicode.Cf) || r == '\u2028' || r == '\u2029'
}

func escapeRune(r rune) string {
	switch r {
	case '\a':
		return `\a`
	case '\b':
		return `\b`
	case '\f':
		return `\f`
	case '\n':
		return `\n`
	case '\r':
		return `\r`
	case '\t':
		return `\t`
	case '\v':
		return `\v`
	}
	switch {
	case r < 0x80:
		return `\x` + hex2(byte(r))
	case r <= 0xffff:
		return `\u` + pad(strconv.FormatInt(int64(r), 16), 4)
	}
	return `\U` + pad(strconv.FormatInt(int64(r), 16), 8)
}

func hex2(c byte) string { return pad(strconv.FormatUint(uint64(c), 16), 2) }

func pad(s string, n int) string { return strings.Repeat("0", n-len(s)) + s }
