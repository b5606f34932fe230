package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ParseJoined decodes the data of a joined event and applies every rule of
// docs/events.md that needs no configuration: whether the instance exists and the
// instance's defaults are the caller's business (see ApplyDefaults). It
// returns the normalised value later events carry: strings trimmed of Unicode
// white space, email lower-cased, usageLocation upper-cased, displayName
// defaulted from the trimmed names.
//
// Every problem found is reported, not just the first, each as a *FieldError
// joined with errors.Join, so an HR system can fix a record in one round.
// Unknown fields are ignored; null counts as absent. Text that is not UTF-8
// anywhere in data, unknown fields included, and data nested more than
// MaxDepth levels are refused before anything else, as one FieldError.
func ParseJoined(data []byte) (Joined, error) {
	if p := scanJSON(data, "", MaxDepth); p != nil {
		return Joined{}, p.fieldError()
	}
	var obj map[string]json.RawMessage
	if !isObject(data) || json.Unmarshal(data, &obj) != nil {
		return Joined{}, &FieldError{Field: "data", Problem: fmt.Sprintf("must be a JSON object with the joined fields (email, givenName, …); got %s", describe(data))}
	}
	p := parser{obj: obj}
	var j Joined
	j.Email = p.required("email", "the user's address, e.g. "+exampleEmail, checkEmail)
	j.GivenName = p.required("givenName", `the user's given name, e.g. "Ana"`, checkName(maxName))
	j.Surname = p.required("surname", `the user's surname, e.g. "Silva"`, checkName(maxName))
	j.DisplayName = p.optional("displayName", checkName(maxDisplayName), true)
	j.UsageLocation = p.required("usageLocation", `the user's country as an ISO 3166-1 alpha-2 code, e.g. "PT"`, checkCountry)
	j.Instance = p.required("instance", `the name of a configured instance, e.g. "sales"`, accept)
	j.Roles = p.roles()
	j.License = p.optional("license", accept, false)
	j.Message = p.optional("message", checkMessage, false)
	j.SendEmail = p.sendEmail()
	j.RedirectURL = p.optional("redirectUrl", checkRedirectURL, true)
	if len(p.errs) > 0 {
		return Joined{}, errors.Join(p.errs...)
	}
	if j.DisplayName == "" {
		j.DisplayName = j.GivenName + " " + j.Surname
	}
	return j, nil
}

// parser collects every problem of one joined payload.
type parser struct {
	obj  map[string]json.RawMessage
	errs []error
}

func (p *parser) fail(field, format string, args ...any) {
	p.errs = append(p.errs, &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
}

// field returns the raw value of a field that is present and not null.
func (p *parser) field(name string) (json.RawMessage, bool) {
	raw, ok := p.obj[name]
	if !ok || isNull(raw) {
		return nil, false
	}
	return raw, true
}

// str returns the trimmed string value of a field; ok is false when the field
// is absent, null or (reported) not a string.
func (p *parser) str(name string) (s string, ok bool) {
	raw, ok := p.field(name)
	if !ok {
		return "", false
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		p.fail(name, "must be a JSON string, not %s", kind(raw))
		return "", false
	}
	return strings.TrimSpace(s), true
}

// required reads a field every joined event must have. what tells the
// publisher what belongs there.
func (p *parser) required(name, what string, check func(string) (string, string)) string {
	if _, present := p.field(name); !present {
		p.fail(name, "is required; give %s%s", what, p.caseHint(name))
		return ""
	}
	s, ok := p.str(name)
	switch {
	case !ok:
		return ""
	case s == "":
		p.fail(name, "is blank; give %s", what)
		return ""
	}
	return p.check(name, s, check)
}

// optional reads a field that may be left out. A blank value is the same as
// leaving it out, unless the field has a format (blankIsError), where a blank
// most likely means a mapping bug in the publisher.
func (p *parser) optional(name string, check func(string) (string, string), blankIsError bool) string {
	s, ok := p.str(name)
	switch {
	case !ok:
		return ""
	case s == "" && blankIsError:
		p.fail(name, "is blank; give a value or leave the field out for the default")
		return ""
	case s == "":
		return ""
	}
	return p.check(name, s, check)
}

func (p *parser) check(name, s string, check func(string) (string, string)) string {
	v, problem := check(s)
	if problem != "" {
		p.fail(name, "%s", problem)
	}
	return v
}

// caseHint points at a field that is there under another spelling: JSON
// field names are case-sensitive, and "Email" is a common slip.
func (p *parser) caseHint(name string) string {
	var found []string
	for k := range p.obj {
		if strings.EqualFold(k, name) {
			found = append(found, k)
		}
	}
	if len(found) == 0 {
		return ""
	}
	return fmt.Sprintf(" (found %q: field names are case-sensitive)", slices.Min(found))
}
