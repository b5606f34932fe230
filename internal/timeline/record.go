// Package timeline tells where one onboarding stands: the events of the
// GUESTFLOW stream and the dead letters of GUESTFLOW_DLQ that belong to it,
// in order, with what each step did. Build is a pure function over decoded
// events and dead letters; Load and Status read them from JetStream for
// `guestflow status`.
package timeline

import (
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/guestflow/guestflow/internal/dlq"
	"github.com/guestflow/guestflow/internal/index"
)

// Record is one message of the GUESTFLOW stream, decoded as far as it goes.
type Record struct {
	Seq     uint64
	Subject string
	Stored  time.Time
	Header  map[string][]string
	// Event is the decoded event; when the message does not decode it is
	// the zero event and DecodeErr says why.
	Event     event.Event
	DecodeErr error
	// OnboardingID and Email say whose the message is, read from a broken
	// message as far as it can be.
	OnboardingID string
	Email        string
}

// NewRecord decodes one stored message.
func NewRecord(seq uint64, subject string, stored time.Time, header map[string][]string, body []byte) Record {
	id := identify(subject, header, body)
	return Record{Seq: seq, Subject: subject, Stored: stored, Header: header,
		Event: id.event, DecodeErr: id.err, OnboardingID: id.onboardingID, Email: id.email}
}

// identity is a message decoded as far as it goes, and whose it is.
type identity struct {
	event               event.Event
	err                 error
	onboardingID, email string
}

// identify decodes a message and says whose it is, as the index files it
// (index.Identify).
func identify(subject string, header map[string][]string, body []byte) identity {
	id := index.Identify(subject, header, body)
	return identity{event: id.Event, err: id.Err, onboardingID: id.OnboardingID, email: id.Email}
}

// Matches reports whether a message with this onboarding id and email
// answers query: an onboarding id matches exactly, an email address
// case-insensitively. Both are tried, so a caller need not guess which a
// query is.
func Matches(query, onboardingID, email string) bool {
	query = strings.TrimSpace(query)
	if query == "" {
		return false
	}
	return onboardingID == query || (strings.Contains(query, "@") && email == strings.ToLower(query))
}

// letterIdentity says whose a dead letter is: Guestflow-Onboarding-Id, else
// what its body (the failed input, unchanged) says.
func letterIdentity(l dlq.Letter) identity {
	id := identify(l.OriginalSubject, l.Header, l.Data)
	if l.OnboardingID != "" {
		id.onboardingID = l.OnboardingID
	}
	return id
}
