package events

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits from docs/events.md. Graph caps names at 64 and display names at 256;
// the others keep one event well inside the 64 KiB message limit.
const (
	maxName        = 64
	maxDisplayName = 256
	maxRoles       = 20
	maxMessage     = 2000
	maxRedirectURL = 2048
)

// checkName returns a checker for a name of at most max code points. Control
// characters are refused because they end up in mail headers and in the
// Dynamics user list, where nobody can see or fix them.
func checkName(max int) func(string) (string, string) {
	return func(s string) (string, string) {
		if n := utf8.RuneCountInString(s); n > max {
			return "", fmt.Sprintf("is %d characters long; shorten it to at most %d", n, max)
		}
		for _, r := range s {
			if unicode.Is(unicode.Cc, r) {
				return "", fmt.Sprintf("contains the control character %U; remove it", r)
			}
		}
		return s, ""
	}
}

// accept is the check of a field whose only rule is being a string.
func accept(s string) (string, string) { return s, "" }

// checkMessage bounds the personal message; it is plain text, so anything
// else goes and the notify step escapes it.
func checkMessage(s string) (string, string) {
	if n := utf8.RuneCountInString(s); n > maxMessage {
		return "", fmt.Sprintf("is %d characters long; shorten it to at most %d", n, maxMessage)
	}
	return s, ""
}

// checkRedirectURL insists on an absolute https URL: the redeemed invitation
// lands there, so a relative URL has nowhere to go and a plain-http one would
// hand the freshly signed-in guest to an unencrypted page.
func checkRedirectURL(s string) (string, string) {
	if n := utf8.RuneCountInString(s); n > maxRedirectURL {
		return "", fmt.Sprintf("is %d characters long; at most %d are allowed", n, maxRedirectURL)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Sprintf("%s is not a URL; give an absolute https URL like \"https://contoso.crm4.dynamics.com/\"", quote(s))
	}
	if u.Scheme != "https" || u.Hostname() == "" {
		return "", fmt.Sprintf("%s must be an absolute https URL like \"https://contoso.crm4.dynamics.com/\"", quote(s))
	}
	return s, ""
}

// roles decodes the roles array. An empty array means the instance's roles,
// like an absent one, so it comes back nil.
func (p *parser) roles() []string {
	raw, ok := p.field("roles")
	if !ok {
		return nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		hint := `, e.g. ["Salesperson"]`
		var s string
		if json.Unmarshal(raw, &s) == nil {
			hint = fmt.Sprintf("; write [%s] for one role", quote(s))
		}
		p.fail("roles", "must be a JSON array of role names, not %s%s", kind(raw), hint)
		return nil
	}
	if len(items) > maxRoles {
		p.fail("roles", "lists %d roles; at most %d are allowed", len(items), maxRoles)
		return nil
	}
	var roles []string
	for i, item := range items {
		var s string
		if err := json.Unmarshal(item, &s); err != nil {
			p.fail("roles", "item %d must be a JSON string (a role name), not %s", i+1, kind(item))
			continue
		}
		if s = strings.TrimSpace(s); s == "" {
			p.fail("roles", "item %d is blank; give the role's name or remove the item", i+1)
			continue
		}
		roles = append(roles, s)
	}
	return roles
}

// sendEmail insists on a JSON boolean: a string "false" would otherwise be a
// mail the user was promised not to get.
func (p *parser) sendEmail() *bool {
	raw, ok := p.field("sendEmail")
	if !ok {
		return nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		var s string
		switch {
		case json.Unmarshal(raw, &s) != nil:
			p.fail("sendEmail", "must be a JSON boolean (true or false), not %s", kind(raw))
		case s == "true" || s == "false":
			p.fail("sendEmail", "must be a JSON boolean, not the string %s; remove the quotes", quote(s))
		default:
			p.fail("sendEmail", "must be a JSON boolean (true or false), not the string %s", quote(s))
		}
		return nil
	}
	return &b
}
