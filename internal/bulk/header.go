package bulk

import (
	"fmt"
	"regexp"
	"strings"
)

// A column is known by the name in its square brackets; the words around
// it are the portal's (and are translated in localised portals).
type column struct {
	key   string // the bracketed name, lower-cased for matching
	name  string // as the template spells it, for messages
	field string // the joined data field it fills
}

var columns = []column{
	{"inviteeemail", "[inviteeEmail]", "email"},
	{"inviteredirecturl", "[inviteRedirectURL]", "redirectUrl"},
	{"sendemail", "[sendEmail]", "sendEmail"},
	{"customizedmessagebody", "[customizedMessageBody]", "message"},
	{"givenname", "[givenName]", "givenName"},
	{"surname", "[surname]", "surname"},
	{"usagelocation", "[usageLocation]", "usageLocation"},
	{"instance", "[instance]", "instance"},
	{"roles", "[roles]", "roles"},
	{"license", "[license]", "license"},
}

// columnOf maps a joined field to its column, columnByKey a bracketed name.
var columnOf, columnByKey = func() (byField, byKey map[string]column) {
	byField, byKey = map[string]column{}, map[string]column{}
	for _, c := range columns {
		byField[c.field], byKey[c.key] = c, c
	}
	return byField, byKey
}()

var bracketed = regexp.MustCompile(`\[([^\[\]]*)\]`)

const version = "version:v1.0"

// checkVersion accepts the template's first line. The portal refuses a file
// without it, so a file that lacks it was not made from the template and
// guessing its layout is not worth the wrong onboardings.
func checkVersion(line int, record []string) error {
	first := strings.TrimSpace(record[0])
	switch {
	case strings.EqualFold(first, version):
		return nil
	case len(bracketed.FindAllString(strings.Join(record, ","), -1)) > 0:
		return fmt.Errorf("%w: line %d is the header, but the template's first line %q is missing; add it above the header",
			ErrUnreadable, line, version)
	case strings.HasPrefix(strings.ToLower(first), "version:"):
		return fmt.Errorf("%w: line %d: template %q is not supported; guestflow reads %q", ErrUnreadable, line, first, version)
	}
	return fmt.Errorf("%w: line %d must be the template's %q line, not %q; start from the portal's bulk-invite template",
		ErrUnreadable, line, version, first)
}

// header maps each known column to its index. Unknown bracketed names and
// unbracketed titles are reported as notes: a typo such as [firstName] would
// otherwise silently reject every row for a missing givenName.
type header struct {
	index map[string]int // column key → cell index
	width int
}

func parseHeader(line int, record []string) (header, []string, error) {
	h := header{index: map[string]int{}, width: len(record)}
	var notes []string
	if len(record) == 1 && len(bracketed.FindAllString(record[0], -1)) > 1 {
		return h, nil, fmt.Errorf("%w: line %d: the header is one cell holding several columns; save the file as comma-separated CSV",
			ErrUnreadable, line)
	}
	for i, cell := range record {
		m := bracketed.FindStringSubmatch(cell)
		if m == nil {
			if strings.TrimSpace(cell) != "" {
				notes = append(notes, fmt.Sprintf("line %d: column %d %q has no [name] and is ignored", line, i+1, cell))
			}
			continue
		}
		key := strings.ToLower(strings.TrimSpace(m[1]))
		if _, known := columnByKey[key]; !known {
			notes = append(notes, fmt.Sprintf("line %d: column %d %q is not one guestflow reads and is ignored", line, i+1, cell))
			continue
		}
		if j, dup := h.index[key]; dup {
			return h, nil, fmt.Errorf("%w: line %d: columns %d and %d are both [%s]; keep one", ErrUnreadable, line, j+1, i+1, m[1])
		}
		h.index[key] = i
	}
	if _, ok := h.index["inviteeemail"]; !ok {
		return h, nil, fmt.Errorf("%w: line %d: the header has no [inviteeEmail] column (the template's \"Email address to invite [inviteeEmail] Required\")",
			ErrUnreadable, line)
	}
	return h, notes, nil
}

// cell returns the trimmed value of a column in record, and whether the file
// has that column at all (a short record simply has empty trailing cells).
func (h header) cell(record []string, key string) (value string, hasColumn bool) {
	i, ok := h.index[key]
	if !ok {
		return "", false
	}
	if i >= len(record) {
		return "", true
	}
	return strings.TrimSpace(record[i]), true
}
