package events

import (
	"cmp"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth bounds how deeply objects and arrays may nest in an event's data
// (the data object itself is the first level). guestflow's own data nests
// three levels (assignedRoles holds objects); the limit leaves publishers
// room for extras while a hostile body cannot make a decoder recurse, and it
// is checked before any decoding. Past encoding/json's own limit of 10,000
// its "exceeded max depth" error read as if the body were no JSON at all.
const MaxDepth = 32

// jsonProblem is what scanJSON found wrong, and where.
type jsonProblem struct {
	// path names the member, as in data.roles[1] or data.x.y; "" is the
	// document itself.
	path string
	// tooDeep is the depth limit; otherwise problem says what is wrong
	// with the text at path.
	tooDeep bool
	problem string
}

// scanJSON reads a JSON document once, before anything decodes it, for what
// encoding/json would let through or choke on without a useful word:
//   - bytes that are not UTF-8 and \u escapes of half a surrogate pair, in
//     any string, member names and unknown members included. encoding/json
//     silently turns both into U+FFFD, so "Ana" with a stray byte would be
//     onboarded as "An�", and an id would no longer be the id the publisher
//     sent. RFC 8259 requires JSON exchanged between systems to be UTF-8.
//   - more than limit levels of objects and arrays.
//
// root names the document in the path ("data" for binary-mode data, "" for
// a structured event, whose top-level members are named as they are). A
// document that is not well-formed JSON is scanned as far as it goes; the
// decoding that follows says what is wrong with it.
func scanJSON(b []byte, root string, limit int) *jsonProblem {
	var stack []frame
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '{', '[':
			if len(stack) >= limit {
				return &jsonProblem{path: pathOf(root, stack), tooDeep: true}
			}
			stack = append(stack, frame{object: c == '{', wantName: c == '{'})
		case '}', ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case ',':
			if n := len(stack); n > 0 {
				if stack[n-1].object {
					stack[n-1].wantName, stack[n-1].name = true, nil
				} else {
					stack[n-1].index++
				}
			}
		case ':':
			if n := len(stack); n > 0 {
				stack[n-1].wantName = false
			}
		case '"':
			end, problem := scanString(b, i+1)
			top := len(stack) - 1
			isName := top >= 0 && stack[top].object && stack[top].wantName
			if problem != "" {
				if isName {
					problem = "has a member name that " + problem
				}
				return &jsonProblem{path: pathOf(root, stack), problem: problem}
			}
			if isName {
				stack[top].name = b[i:min(end+1, len(b))]
			}
			i = end
		}
	}
	return nil
}

// frame is one open object or array.
type frame struct {
	object   bool
	wantName bool // an object between members: the next string is a name
	// name is the member being read, quoted as in the document; it
	// becomes a path element only for an error, so that scanning a valid
	// body decodes no name.
	name  []byte
	index int // the array item being read
}

// scanString checks the string whose text starts at b[start], returning
// the index of its closing quote (len(b) when it has none) and what is
// wrong with it, if anything.
func scanString(b []byte, start int) (end int, problem string) {
	for i := start; i < len(b); {
		c := b[i]
		switch {
		case c == '"':
			return i, ""
		case c == '\\' && i+1 < len(b) && b[i+1] == 'u':
			r, ok := hex4(b, i+2)
			if !ok {
				i += 2
				continue
			}
			if utf16.IsSurrogate(r) {
				low, lowOK := rune(0), false
				if i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
					low, lowOK = hex4(b, i+8)
				}
				if r >= 0xdc00 || !lowOK || utf16.DecodeRune(r, low) == utf8.RuneError {
					return i, fmt.Sprintf(`holds the escape \u%04x, half of a UTF-16 surrogate pair, which is no character; send the text as UTF-8`, r)
				}
				i += 12
				continue
			}
			i += 6
		case c == '\\':
			i += 2
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return i, fmt.Sprintf("is not valid UTF-8 (byte 0x%02x, %d bytes into the text); send the text as UTF-8", c, i-start)
			}
			i += size
		}
	}
	return len(b), ""
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[at:at+4]), 16, 16)
	return rune(n), err == nil
}

// memberName renders a member name as a path element: as it is when it
// is a plain name, else quoted.
func memberName(quoted []byte) string {
	var s string
	if json.Unmarshal(quoted, &s) != nil {
		return strconv.Quote(string(quoted))
	}
	if s == "" || strings.ContainsFunc(s, func(r rune) bool {
		return !(r == '_' || r == '-' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z')
	}) {
		return quote(s)
	}
	return s
}

// maxPath keeps a path in an error message readable.
const maxPath = 120

func pathOf(root string, stack []frame) string {
	var b strings.Builder
	b.WriteString(root)
	for i, f := range stack {
		switch {
		case i == 0 && root == "" && f.object:
			if f.name != nil {
				b.WriteString(memberName(f.name))
			}
		case f.object && f.name != nil:
			b.WriteString("." + memberName(f.name))
		case !f.object:
			b.WriteString("[" + strconv.Itoa(f.index) + "]")
		}
		if b.Len() > maxPath {
			return strings.ToValidUTF8(b.String()[:maxPath], "") + "…"
		}
	}
	return b.String()
}

// text says what is wrong for an error message.
func (p *jsonProblem) text() string {
	if p.tooDeep {
		what := "the body"
		if p.path == "data" || strings.HasPrefix(p.path, "data.") || strings.HasPrefix(p.path, "data[") {
			what = "the data"
		}
		return fmt.Sprintf("%s is nested too deeply: more than %d levels of objects and arrays (at %s)", what, MaxDepth, p.path)
	}
	if p.path == "" {
		return "the body " + p.problem
	}
	return p.path + " " + p.problem
}

// fieldError is the problem as ParseJoined reports it: on the member it
// is about, or on "data" for the data as a whole.
func (p *jsonProblem) fieldError() *FieldError {
	if p.tooDeep {
		return &FieldError{Field: "data", Problem: fmt.Sprintf(
			"is nested too deeply: more than %d levels of objects and arrays (at %s)", MaxDepth, cmp.Or(p.path, "the top"))}
	}
	return &FieldError{Field: cmp.Or(p.path, "data"), Problem: p.problem}
}
