package intake

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The HMAC scheme's headers (docs/intake.md#hmac-signatures).
const (
	HeaderTimestamp = "X-Guestflow-Timestamp"
	HeaderSignature = "X-Guestflow-Signature"
)

// SignatureWindow is how far a signature's timestamp may be from the
// intake's clock, either way: a captured request can be replayed for this
// long at most, and a sender's clock may be off by this much.
const SignatureWindow = 5 * time.Minute

// signaturePrefix starts X-Guestflow-Signature; it names the algorithm so
// that another can follow without a new header.
const signaturePrefix = "sha256="

// Sign returns X-Guestflow-Signature for a request: HMAC-SHA256 with the
// secret over the timestamp (Unix seconds), the method, the path as sent
// (escaped, without the query) and the body, joined by newlines. The
// method and path are signed so that a signature of one request cannot be
// replayed on another route; none of them can hold a newline, so the
// joined string is unambiguous.
func Sign(secret []byte, timestamp int64, method, path string, body []byte) string {
	return signaturePrefix + hex.EncodeToString(mac(secret, strconv.FormatInt(timestamp, 10), method, path, body))
}

func mac(secret []byte, timestamp, method, path string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp + "\n" + method + "\n" + path + "\n"))
	m.Write(body)
	return m.Sum(nil)
}

// credential is who sent a request, as far as the rate limit and the logs
// are concerned. Neither field holds a secret: key is derived from a
// token's digest, label names the line of the file it is on.
type credential struct {
	key   string
	label string
}

// authError is a 401: its text says what to fix and never repeats what
// was presented.
type authError struct{ msg string }

func (e *authError) Error() string { return e.msg }

func unauthorized(format string, args ...any) *authError {
	return &authError{fmt.Sprintf(format, args...)}
}

// authenticator checks the credentials a request carries against the
// configured ones. A request carries exactly one of: the signature headers
// or an Authorization bearer token; with mTLS alone the verified client
// certificate is the credential. With mTLS beside tokens or signatures the
// certificate is required of the connection (the TLS handshake checks it)
// and the request carries a token or a signature too.
type authenticator struct {
	tokens *secretsFile // nil: no bearer tokens
	hmac   *secretsFile // nil: no HMAC signatures
	mtls   bool
	now    func() time.Time
}

// wantsBody reports whether r is signed, so that the body must be read
// before r can be authenticated.
func wantsBody(r *http.Request) bool {
	return r.Header.Get(HeaderSignature) != "" || r.Header.Get(HeaderTimestamp) != ""
}

// authenticate returns the request's credential, or why it has none. body
// is the whole request body when wantsBody(r), else nil.
func (a *authenticator) authenticate(r *http.Request, body []byte) (credential, *authError) {
	if a.mtls {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			return credential{}, unauthorized("a verified client certificate is required")
		}
	}
	signed := wantsBody(r)
	authz := r.Header.Get("Authorization")
	switch {
	case signed && authz != "":
		return credential{}, unauthorized("send one credential: either Authorization or the %s and %s headers", HeaderTimestamp, HeaderSignature)
	case signed:
		return a.signature(r, body)
	case authz != "":
		return a.bearer(authz)
	case a.mtls && a.tokens == nil && a.hmac == nil:
		cert := r.TLS.VerifiedChains[0][0]
		subject := cert.Subject.String()
		return credential{key: "cert:" + subject, label: "client certificate " + subject}, nil
	}
	return credential{}, unauthorized("no credential: %s", a.accepted())
}

// accepted says which credentials this intake takes.
func (a *authenticator) accepted() string {
	var ways []string
	if a.tokens != nil {
		ways = append(ways, "send Authorization: Bearer <token>")
	}
	if a.hmac != nil {
		ways = append(ways, fmt.Sprintf("sign the request (%s, %s)", HeaderTimestamp, HeaderSignature))
	}
	return strings.Join(ways, ", or ")
}

func (a *authenticator) bearer(authz string) (credential, *authError) {
	if a.tokens == nil {
		return credential{}, unauthorized("this intake takes no bearer tokens: %s", a.accepted())
	}
	scheme, token, ok := strings.Cut(authz, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return credential{}, unauthorized("Authorization must be \"Bearer <token>\"")
	}
	digest := sha256.Sum256([]byte(strings.TrimSpace(token)))
	// Every token is compared, so the time taken does not say which
	// one, if any, matched.
	var match *secret
	for _, s := range a.tokens.secrets() {
		if subtle.ConstantTimeCompare(digest[:], s.digest[:]) == 1 {
			match = &s
		}
	}
	if match == nil {
		return credential{}, unauthorized("the bearer token is not one of this intake's tokens")
	}
	return credential{key: "token:" + hex.EncodeToString(match.digest[:]), label: fmt.Sprintf("token on line %d of the tokens file", match.line)}, nil
}

func (a *authenticator) signature(r *http.Request, body []byte) (credential, *authError) {
	if a.hmac == nil {
		return credential{}, unauthorized("this intake takes no HMAC signatures: %s", a.accepted())
	}
	tsText, sigText := r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature)
	if tsText == "" || sigText == "" {
		return credential{}, unauthorized("a signed request needs both %s and %s", HeaderTimestamp, HeaderSignature)
	}
	now := a.now().Unix()
	ts, err := strconv.ParseInt(tsText, 10, 64)
	// Past 1<<36 seconds (the year 4147) it is no time in seconds.
	if err != nil || ts <= 0 || ts > 1<<36 {
		hint := ""
		if ms := ts / 1000; err == nil && ms > now-int64(SignatureWindow.Seconds()) && ms < now+int64(SignatureWindow.Seconds()) {
			hint = " (this looks like milliseconds)"
		}
		return credential{}, unauthorized("%s must be the Unix time in seconds, like %d%s", HeaderTimestamp, now, hint)
	}
	if skew := time.Duration(now-ts) * time.Second; skew > SignatureWindow || skew < -SignatureWindow {
		return credential{}, unauthorized("%s is %s away from the intake's clock; a signature is good for %s either way: sign the request again now (and check the sender's clock)",
			HeaderTimestamp, skew.Abs().Round(time.Second), SignatureWindow)
	}
	hexSig, ok := strings.CutPrefix(sigText, signaturePrefix)
	got, err := hex.DecodeString(hexSig)
	if !ok || err != nil || len(got) != sha256.Size {
		return credential{}, unauthorized("%s must be %s followed by 64 hex digits", HeaderSignature, signaturePrefix)
	}
	var match *secret
	for _, s := range a.hmac.secrets() {
		if hmac.Equal(got, mac(s.value, tsText, r.Method, r.URL.EscapedPath(), body)) {
			match = &s
		}
	}
	if match == nil {
		return credential{}, unauthorized("the signature does not match: sign <timestamp>\\n<method>\\n<path>\\n<body> with HMAC-SHA256 and one of this intake's secrets (docs/intake.md)")
	}
	sum := sha256.Sum256(match.value)
	return credential{key: "hmac:" + hex.EncodeToString(sum[:]), label: fmt.Sprintf("HMAC secret on line %d of the secrets file", match.line)}, nil
}

// ready says why no request could authenticate, or nil.
func (a *authenticator) ready() error {
	if a.tokens != nil {
		if err := a.tokens.err(); err == nil {
			return nil
		} else if a.hmac == nil {
			return err
		}
	}
	if a.hmac != nil {
		return a.hmac.err()
	}
	return nil
}
