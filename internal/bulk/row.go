package bulk

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/guestflow/guestflow/pkg/events"
)

// fieldOrder is the contract's order of the joined fields; a row's problems
// are listed in it so that the same row always reads the same.
var fieldOrder = []string{"email", "givenName", "surname", "usageLocation", "instance", "roles",
	"license", "message", "sendEmail", "redirectUrl"}

// flagOf names the importer flag behind each default, so that a bad default
// is blamed on the flag rather than on a cell the operator cannot find.
var flagOf = map[string]string{
	"instance": "--instance", "usageLocation": "--usage-location", "license": "--license", "roles": "--roles",
}

// joined turns one data record into validated joined data. Every rule of
// docs/events.md is events.ParseJoined's; this function only maps cells to
// fields, fills defaults and rewords what a CSV author would not understand
// ("email is required" becomes "the [inviteeEmail] cell is empty").
func (h header) joined(record []string, o Options) (events.Joined, Problems) {
	if probs := h.notUTF8(record); probs != nil {
		return events.Joined{}, probs
	}
	data := map[string]any{}
	missing := map[string]string{} // field → what to do about it
	defaulted := map[string]bool{}
	var probs Problems

	for _, f := range []string{"email", "givenName", "surname", "license", "message", "redirectUrl",
		"usageLocation", "instance"} {
		c := columnOf[f]
		v, has := h.cell(record, c.key)
		if v == "" {
			if def := defaultOf(o.Defaults, f); def != "" {
				v, defaulted[f] = def, true
			}
		}
		if v != "" {
			data[f] = v
			continue
		}
		switch f {
		case "email":
			missing[f] = "the [inviteeEmail] cell is empty; give the guest's address"
		case "givenName", "surname":
			if !has {
				missing[f] = fmt.Sprintf("the file has no %s column; add one (names have no default)", c.name)
			} else {
				missing[f] = fmt.Sprintf("the %s cell is empty; fill it in (names have no default)", c.name)
			}
		case "usageLocation":
			missing[f] = "no value; fill in a [usageLocation] column with the country code (e.g. PT) or pass --usage-location"
		case "instance":
			missing[f] = "no value; fill in an [instance] column or pass --instance"
		}
	}

	roleCell, _ := h.cell(record, "roles")
	roles := splitList(roleCell, ";")
	if len(roles) == 0 && len(o.Defaults.Roles) > 0 {
		roles, defaulted["roles"] = o.Defaults.Roles, true
	}
	if len(roles) > 0 {
		data["roles"] = roles
	}

	sendCell, _ := h.cell(record, "sendemail")
	if send, err := parseSendEmail(sendCell); err != nil {
		probs = append(probs, err)
	} else if send != nil {
		data["sendEmail"] = *send
	}

	if inst, ok := data["instance"].(string); ok && len(o.Instances) > 0 && !slices.Contains(o.Instances, inst) {
		probs = append(probs, blame(&events.FieldError{Field: "instance", Problem: fmt.Sprintf(
			"%q is not a configured instance (configured: %s)", inst, strings.Join(o.Instances, ", "))}, defaulted))
	}
	if extra := nonEmptyAfter(record, h.width); extra > 0 {
		probs = append(probs, fmt.Errorf("the row has %d more cells than the header has columns; quote values that contain commas", extra))
	}

	raw, _ := json.Marshal(data) // strings, a bool and a string slice always marshal
	j, err := events.ParseJoined(raw)
	for _, e := range unjoin(err) {
		var fe *events.FieldError
		if errors.As(e, &fe) {
			if _, ours := missing[fe.Field]; ours {
				continue
			}
			e = blame(fe, defaulted)
		}
		probs = append(probs, e)
	}
	for f, problem := range missing {
		probs = append(probs, &events.FieldError{Field: f, Problem: problem})
	}
	if len(probs) > 0 {
		slices.SortStableFunc(probs, func(a, b error) int { return rank(a) - rank(b) })
		return events.Joined{}, probs
	}
	return j, nil
}

func defaultOf(d Defaults, field string) string {
	switch field {
	case "instance":
		return strings.TrimSpace(d.Instance)
	case "usageLocation":
		return strings.TrimSpace(d.UsageLocation)
	case "license":
		return strings.TrimSpace(d.License)
	}
	return ""
}

// blame adds which flag a defaulted field's bad value came from.
func blame(fe *events.FieldError, defaulted map[string]bool) error {
	if !defaulted[fe.Field] {
		return fe
	}
	return &events.FieldError{Field: fe.Field, Problem: fe.Problem + " (the value comes from " + flagOf[fe.Field] + ")"}
}

// parseSendEmail reads [sendEmail] the way spreadsheets write booleans. An
// empty cell is the contract's default (true); anything else unrecognised
// rejects the row, because guessing wrong mails someone who was promised no
// mail, or leaves someone without their link.
func parseSendEmail(s string) (*bool, error) {
	var b bool
	switch strings.ToLower(s) {
	case "":
		return nil, nil
	case "true", "yes", "1":
		b = true
	case "false", "no", "0":
		b = false
	default:
		return nil, &events.FieldError{Field: "sendEmail", Problem: fmt.Sprintf(
			"%q is not a yes/no value; write true, false, yes, no, 1 or 0, or leave it empty for true", s)}
	}
	return &b, nil
}

// splitList splits s at sep, trimming items and dropping empty ones (a
// trailing separator is a common slip, not a role with no name).
func splitList(s, sep string) []string {
	var items []string
	for _, it := range strings.Split(s, sep) {
		if it = strings.TrimSpace(it); it != "" {
			items = append(items, it)
		}
	}
	return items
}

// nonEmptyAfter counts the non-blank cells past the header's width.
// Spreadsheets pad rows with empty cells, which are harmless; a value there
// means the columns have slipped, typically an unquoted comma.
func nonEmptyAfter(record []string, width int) int {
	n := 0
	for i := width; i < len(record); i++ {
		if strings.TrimSpace(record[i]) != "" {
			n++
		}
	}
	return n
}

// unjoin lists the errors errors.Join put together.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// rank orders problems by field; problems about the row itself come last.
func rank(err error) int {
	var fe *events.FieldError
	if errors.As(err, &fe) {
		if i := slices.Index(fieldOrder, fe.Field); i >= 0 {
			return i
		}
	}
	return len(fieldOrder)
}

// notUTF8 rejects cells that are not UTF-8 before anything else looks at
// them: json.Marshal would turn each bad byte into U+FFFD, so "José" from a
// file saved in a legacy code page would be onboarded as "Jos�".
func (h header) notUTF8(record []string) Problems {
	var probs Problems
	for _, c := range columns {
		v, _ := h.cell(record, c.key)
		if !utf8.ValidString(v) {
			probs = append(probs, &events.FieldError{Field: c.field, Problem: fmt.Sprintf(
				"the %s cell is not UTF-8 text (byte 0x%02x); save the file as \"CSV UTF-8\"", c.name, v[firstInvalid(v)])})
		}
	}
	return probs
}

// firstInvalid is the index of the first byte of s that is not UTF-8.
func firstInvalid(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return i
			}
		}
	}
	return len(s)
}
