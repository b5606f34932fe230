// Package index keeps GUESTFLOW_INDEX, a key-value bucket that says which
// messages of the GUESTFLOW stream belong to an onboarding id and to an
// email address, so that `guestflow status` reads one person's events
// instead of the whole event log. The subjects of the stream carry no
// user, so without it every lookup is a scan of 30 days of events.
//
// The worker runtime writes it (Writer), for every message it receives or
// publishes; HR systems publish joined events straight to NATS and know
// nothing of it. Status reads it (Reader). The index is only a shortcut:
// it files a message under exactly the onboarding id and address status
// matches messages by (Identify), and status checks every message it reads
// through the index against the query all the same, so a stale or
// colliding entry costs a read, never a wrong answer.
//
// Keys, both hashed because event ids and addresses are any text and key
// names are not:
//
//	o.<hash of the onboarding id>.<seq>                 empty: the message stored at GUESTFLOW sequence seq is the onboarding's
//	e.<hash of the address>.<hash of the onboarding id>  the decimal sequence of the onboarding's latest message filed: the address has that onboarding
//
// where hash is the first 16 bytes of SHA-256 in hex, and the address is
// lower-cased. A message is filed by putting its one or two keys, without
// reading anything first and without a compare-and-set: a write is one
// round trip to the broker, however many workers file into the same
// onboarding or address at once, and filing a message again writes the
// same keys. The reader lists the keys under an onboarding's or address's
// prefix.
//
// An address's key holds the sequence of the message being filed, so the
// latest put wins: the key says the onboarding's newest message the index
// was told of (near enough: two workers filing two of its messages at once
// may land in either order), not its first, which only a read or a
// conditional write could keep. The value only orders an address's
// onboardings for the bound below, and newest-by-latest-message is what
// status wants there too; in exchange every message refreshes the key's
// expiry, so it lasts as long as the onboarding's newest message.
//
// Nothing bounds a key's value any more, so the bounds apply on read
// (MaxEvents, MaxOnboardings), keeping the newest. Keys expire the
// stream's MaxAge after their last write, when the messages they name have
// left the stream too (each was stored before its keys were written).
//
// Releases before this layout kept one key per onboarding and address,
// with JSON lists: o.<hash> {"seqs":[…]} and e.<hash>
// {"onboardings":[{"key":"o.…","seq":…}]}. The reader reads those too,
// in the same listing, so a bucket written by an older release keeps
// serving status until its keys expire; the writer never writes them.
package index

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/guestflow/guestflow/pkg/events"
)

// Bucket is the key-value bucket's name.
const Bucket = "GUESTFLOW_INDEX"

// Bounds on what a lookup returns. An address onboarded over and over (a
// test account, an HR system resending) or an onboarding id reused by a
// publisher would otherwise make status read without end. The newest
// entries are kept: status then shows an address's latest MaxOnboardings
// onboardings (by their latest message), and an onboarding's latest
// MaxEvents events; `guestflow status --scan` reads everything.
const (
	MaxOnboardings = 100
	MaxEvents      = 100
)

// Identity is a message of the stream decoded as far as it goes, and whose
// it is.
type Identity struct {
	// Event is the decoded event; the zero event when the message does
	// not decode, and Err says why.
	Event event.Event
	Err   error
	// OnboardingID and Email say whose the message is, read from a broken
	// message as far as it can be; Email is lower-cased.
	OnboardingID string
	Email        string
}

// Identify decodes a message and says whose it is. The email comes from
// the data (every event carries the joined data, email lower-cased after
// the invite step) and else from the CloudEvents subject, which an HR
// system may set to anything on a joined event.
func Identify(subject string, header map[string][]string, body []byte) Identity {
	ev, err := events.Decode(subject, header, body)
	if err != nil {
		return Identity{Err: err, OnboardingID: events.PeekOnboardingID(header, body), Email: peekEmail(header, body)}
	}
	return IdentityOf(ev)
}

// IdentityOf says whose a decoded event is, as Identify does.
func IdentityOf(ev event.Event) Identity {
	email := emailIn(ev.Data())
	if email == "" {
		email = strings.ToLower(strings.TrimSpace(ev.Subject()))
	}
	return Identity{Event: ev, OnboardingID: events.OnboardingID(ev), Email: email}
}

// peekEmail reads the email of a message that does not decode: the data's
// email, in binary mode the body itself, else in a structured body.
func peekEmail(header map[string][]string, body []byte) string {
	if _, binary := header["ce-specversion"]; binary {
		return emailIn(body)
	}
	var s struct {
		Subject string          `json:"subject"`
		Data    json.RawMessage `json:"data"`
	}
	if json.Unmarshal(body, &s) != nil {
		return ""
	}
	if e := emailIn(s.Data); e != "" {
		return e
	}
	return strings.ToLower(strings.TrimSpace(s.Subject))
}

func emailIn(data []byte) string {
	var d struct {
		Email string `json:"email"`
	}
	_ = json.Unmarshal(data, &d)
	return strings.ToLower(strings.TrimSpace(d.Email))
}

// Key prefixes: an onboarding id's keys are "o.<hash>.…", an address's
// "e.<hash>.…"; "o.<hash>" and "e.<hash>" themselves are the keys of the
// layout before.
const (
	onboardingPrefix = "o."
	addressPrefix    = "e."
)

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}
