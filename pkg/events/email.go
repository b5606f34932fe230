package events

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits of RFC 5321 that Entra ID and Exchange enforce too.
const (
	maxEmail      = 254
	maxLocalPart  = 64
	maxLabel      = 63
	exampleEmail  = `"ana.silva@fabrikam.com"`
	atextSpecials = "!#$%&'*+-/=?^_`{|}~"
)

// checkEmail returns the lower-cased address, or why Entra ID would refuse it.
// Only the dot-atom form is accepted: quoted local parts and display names are
// legal RFC 5322 but no invitation can be sent to them.
func checkEmail(s string) (string, string) {
	if n := utf8.RuneCountInString(s); n > maxEmail {
		return "", fmt.Sprintf("is %d characters long; an address has at most %d", n, maxEmail)
	}
	if strings.ContainsAny(s, "<>") {
		return "", fmt.Sprintf("%s must be a bare address like %s, without a display name or angle brackets", quote(s), exampleEmail)
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "", fmt.Sprintf("%s has no @; give a full address like %s", quote(s), exampleEmail)
	}
	local, domain := s[:at], s[at+1:]
	if strings.HasPrefix(local, `"`) {
		return "", fmt.Sprintf("%s has a quoted local part, which guestflow does not accept; use an unquoted address", quote(s))
	}
	if p := checkLocalPart(local); p != "" {
		return "", p
	}
	if p := checkDomain(domain); p != "" {
		return "", p
	}
	return strings.ToLower(s), ""
}

// checkLocalPart enforces RFC 5322's dot-atom: atext runs joined by single dots.
func checkLocalPart(local string) string {
	switch {
	case local == "":
		return "has nothing before the @"
	case len(local) > maxLocalPart:
		return fmt.Sprintf("has a local part (before the @) of %d characters; at most %d are allowed", len(local), maxLocalPart)
	case strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, ".."):
		return fmt.Sprintf("local part %s must not start or end with a dot or have two dots in a row", quote(local))
	}
	for _, r := range local {
		if r != '.' && !isAtext(r) {
			return fmt.Sprintf("local part %s contains %q, which an email address cannot contain; remove it", quote(local), r)
		}
	}
	return ""
}

func isAtext(r rune) bool {
	return isASCIIAlnum(r) || strings.ContainsRune(atextSpecials, r)
}

func isASCIIAlnum(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
}

// checkDomain accepts DNS host names only: an address literal such as
// [192.0.2.1] or a single-label domain cannot receive an invitation.
func checkDomain(domain string) string {
	if domain == "" {
		return "has nothing after the @"
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return fmt.Sprintf("domain %s needs at least two labels, like fabrikam.com", quote(domain))
	}
	for _, l := range labels {
		switch {
		case l == "":
			return fmt.Sprintf("domain %s has an empty label (a leading or trailing dot, or two dots in a row)", quote(domain))
		case len(l) > maxLabel:
			return fmt.Sprintf("domain label %s is %d characters long; at most %d are allowed", quote(l), len(l), maxLabel)
		case l[0] == '-' || l[len(l)-1] == '-':
			return fmt.Sprintf("domain label %s must not start or end with a hyphen", quote(l))
		}
		for _, r := range l {
			if r != '-' && !isASCIIAlnum(r) {
				return fmt.Sprintf("domain %s contains %q; only ASCII letters, digits, hyphens and dots are allowed", quote(domain), r)
			}
		}
	}
	return ""
}
