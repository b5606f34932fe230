package textsafe

import (
	"errors"
	"net/url"
	"strings"
)

// redacted stands in for a URL's credentials.
const redacted = "xxxxx"

// URL returns a URL, or a comma-separated list of them as NATS takes, with
// credentials replaced by "xxxxx", so that it can go into an error or a
// log: "nats://user:secret@host:4222" becomes "nats://user:xxxxx@host:4222",
// as url.URL.Redacted would have it. Unlike Redacted it also hides a user
// name without a password, because in a NATS URL that is the token
// ("nats://s3cret@host" is token authentication). An element that url.Parse
// cannot read, such as one whose password holds a bare "%" or "/", is the
// case that matters most, since the parser's own error quotes it whole:
// there everything between "://" and the last "@" is replaced.
func URL(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = redactOne(p)
	}
	return strings.Join(parts, ",")
}

func redactOne(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	trimmed := strings.TrimSpace(s)
	lead := s[:strings.Index(s, trimmed)]
	if u, err := url.Parse(trimmed); err == nil && u.Host != "" && u.User != nil {
		if _, hasPassword := u.User.Password(); hasPassword {
			u.User = url.UserPassword(u.User.Username(), redacted)
		} else {
			u.User = url.User(redacted)
		}
		return lead + u.String() + s[len(lead)+len(trimmed):]
	}
	// What url.Parse cannot read is cut by hand, erring towards hiding too
	// much: the host may go with the credentials, the credentials never
	// stay.
	start := 0
	if i := strings.Index(s, "://"); i >= 0 {
		start = i + len("://")
	}
	at := strings.LastIndex(s, "@")
	if at < start {
		return s
	}
	return s[:start] + redacted + s[at:]
}

// URLError returns err with the URL of a *url.Error redacted, as nats.go
// returns url.Parse's error for a server URL it cannot read: `parse
// "nats://user:secret@host:bad": invalid port ":bad" after host`. When the
// URL has credentials the parser's complaint goes too, since it quotes the
// part it choked on, which can be a piece of the password. Any other error
// is returned as it is.
func URLError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) || URL(ue.URL) == ue.URL {
		return err
	}
	return &url.Error{Op: ue.Op, URL: URL(ue.URL), Err: errors.New(
		"not a valid URL (the parser's reason is not shown, as it may quote the credentials); " +
			"check the host and port, and that the user and password are URL-encoded (%25 for %, %2F for /, %40 for @)")}
}
