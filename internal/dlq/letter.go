package dlq

import (
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/worker"
)

// Letter is one dead letter as GUESTFLOW_DLQ stores it, with the contract's
// Guestflow-… headers (docs/dead-letters.md) read into fields. Header and Data are the stored
// message, untouched. Attempts is Guestflow-Attempts: the input's deliveries to the step.
type Letter struct {
	Seq     uint64
	Subject string
	// Stored is when the stream stored the dead letter.
	Stored time.Time
	Header nats.Header
	Data   []byte

	Step            string
	Reason          string
	Error           string
	Attempts        int
	OriginalSubject string
	// FailedAt is Guestflow-Failed-At, or Stored when the header is
	// missing or unreadable.
	FailedAt     time.Time
	HTTPStatus   int
	RequestID    string
	OnboardingID string
}

// Parse reads a stored dead letter. It never fails: a message someone else
// put on guestflow.dlq.> is still listed, with what it has.
func Parse(m *jetstream.RawStreamMsg) Letter {
	h := m.Header
	if h == nil {
		h = nats.Header{}
	}
	l := Letter{
		Seq: m.Sequence, Subject: m.Subject, Stored: m.Time, Header: h, Data: m.Data,
		Step:            h.Get(worker.HeaderStep),
		Reason:          h.Get(worker.HeaderReason),
		Error:           h.Get(worker.HeaderError),
		OriginalSubject: h.Get(worker.HeaderOriginalSubject),
		RequestID:       h.Get(worker.HeaderRequestID),
		OnboardingID:    h.Get(worker.HeaderOnboardingID),
		FailedAt:        m.Time,
	}
	if l.Step == "" {
		l.Step = strings.TrimPrefix(m.Subject, worker.DLQPrefix)
	}
	l.Attempts, _ = strconv.Atoi(h.Get(worker.HeaderAttempts))
	l.HTTPStatus, _ = strconv.Atoi(h.Get(worker.HeaderHTTPStatus))
	if t, err := time.Parse(time.RFC3339, h.Get(worker.HeaderFailedAt)); err == nil {
		l.FailedAt = t
	}
	return l
}

// raw is the stored message again, as Republished takes it.
func (l Letter) raw() *jetstream.RawStreamMsg {
	return &jetstream.RawStreamMsg{Subject: l.Subject, Sequence: l.Seq, Header: l.Header, Data: l.Data, Time: l.Stored}
}
