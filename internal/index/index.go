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
//	o.<hash of the onboarding id>   {"seqs":[…]}: the GUESTFLOW sequences of the onboarding's messages
//	e.<hash of the address>         {"onboardings":[{"key":"o.…","seq":…}]}: the address's onboardings
//
// where hash is the first 16 bytes of SHA-256 in hex, and the address is
// lower-cased. Both lists are bounded (MaxEvents, MaxOnboardings) and keep
// the newest. Keys expire the stream's MaxAge after their last write, when
// every message they name has left the stream too. An address's key is
// written only when an onboarding is added to it, so it may expire a few
// hours before the last messages of its newest onboarding leave the
// stream; status then finds no key for the address and scans.
package index

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/guestflow/guestflow/pkg/events"
)

// Bucket is the key-value bucket's name.
const Bucket = "GUESTFLOW_INDEX"

// Bounds on a key's value. An address onboarded over and over (a test
// account, an HR system resending) or an onboarding id reused by a
// publisher would otherwise grow one key without end, and a key's value
// must fit the broker's max payload. The newest entries are kept: status
// then shows an address's latest MaxOnboardings onboardings, and an
// onboarding's latest MaxEvents events; `guestflow status --scan` reads
// everything.
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

// onboarding is the value of an onboarding id's key.
type onboarding struct {
	// Seqs are the GUESTFLOW sequences of the onboarding's messages,
	// ascending.
	Seqs []uint64 `json:"seqs"`
}

// add adds seq and reports whether it was new.
func (o *onboarding) add(seq uint64) bool {
	i, found := slices.BinarySearch(o.Seqs, seq)
	if found {
		return false
	}
	o.Seqs = slices.Insert(o.Seqs, i, seq)
	if n := len(o.Seqs); n > MaxEvents {
		o.Seqs = slices.Delete(o.Seqs, 0, n-MaxEvents)
	}
	return true
}

// person is the value of an address's key.
type person struct {
	// Onboardings name the onboardings' keys, in the order of Seq.
	Onboardings []ref `json:"onboardings"`
}

// ref is one onboarding of an address: its key, and the sequence of its
// first message the index was told of.
type ref struct {
	Key string `json:"key"`
	Seq uint64 `json:"seq"`
}

// add adds the onboarding keyed key, first seen at seq, and reports
// whether it was new.
func (p *person) add(key string, seq uint64) bool {
	if slices.ContainsFunc(p.Onboardings, func(r ref) bool { return r.Key == key }) {
		return false
	}
	p.Onboardings = append(p.Onboardings, ref{Key: key, Seq: seq})
	slices.SortStableFunc(p.Onboardings, func(a, b ref) int { return cmp.Compare(a.Seq, b.Seq) })
	if n := len(p.Onboardings); n > MaxOnboardings {
		p.Onboardings = slices.Delete(p.Onboardings, 0, n-MaxOnboardings)
	}
	return true
}

// onboardingKey and emailKey name the keys; email is lower-cased already.
func onboardingKey(id string) string { return "o." + hash(id) }
func emailKey(email string) string   { return "e." + hash(email) }

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}
