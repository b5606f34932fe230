// Package dlq reads and replays dead letters (docs/dead-letters.md). The CLI's
// `guestflow dlq` commands and the tests share it.
package dlq

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/textsafe"
	"github.com/guestflow/guestflow/internal/worker"
)

// ErrNotADeadLetter is returned for a message without Guestflow-Original-Subject.
var ErrNotADeadLetter = errors.New("dlq: not a dead letter (no " + worker.HeaderOriginalSubject + " header)")

// Replay republishes the dead letter at sequence seq of the DLQ stream: the
// body and the original headers, without the Guestflow-… failure headers,
// to Guestflow-Original-Subject. The dead letter is deleted only after the
// PubAck, so a failed replay loses nothing; a replay that fails again comes
// back as a new dead letter, with a new sequence.
//
// The Nats-Msg-Id is ReplayID's: new to the duplicate window, which still
// holds the input's own id, so the window does not swallow the replay; but
// the same for every replay of this dead letter, so two operators replaying
// it at once, or a replay run again after it was killed between the
// publish and the delete, publish it once (within the stream's duplicate
// window, two minutes; later, the steps' idempotence is what is left).
// A dead letter that someone else removed meanwhile is reported as
// jetstream.ErrMsgNotFound, as one that was already gone.
func Replay(ctx context.Context, js jetstream.JetStream, seq uint64) error {
	s, err := js.Stream(ctx, worker.DLQStream)
	if err != nil {
		return fmt.Errorf("dlq: %w", err)
	}
	return replay(ctx, js, s, seq)
}

// replay is Replay on the DLQ stream s, already looked up: a replay of
// many letters looks it up once. The letter itself is read again, just
// before it is republished, so that one removed since it was listed is
// reported gone rather than replayed.
func replay(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, seq uint64) error {
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		return fmt.Errorf("dlq: dead letter %d: %w", seq, err)
	}
	out, err := Republished(m)
	if err != nil {
		return err
	}
	if m.Header.Get(worker.HeaderBodyTruncated) != "" {
		if out.Data, err = wholeBody(ctx, js, m); err != nil {
			return fmt.Errorf("dlq: dead letter %d: %w", seq, err)
		}
	}
	if _, err := js.PublishMsg(ctx, out, jetstream.WithMsgID(ReplayID(m)), jetstream.WithExpectStream(worker.Stream)); err != nil {
		return fmt.Errorf("dlq: republishing dead letter %d to %s: %w", seq, textsafe.Escape(out.Subject), err)
	}
	switch err := s.DeleteMsg(ctx, seq); {
	case isGone(err):
		return fmt.Errorf("dlq: dead letter %d was removed by someone else while it was replayed; it is stored once: %w", seq, jetstream.ErrMsgNotFound)
	case err != nil:
		return fmt.Errorf("dlq: dead letter %d was replayed but not removed (replaying it again is harmless): %w", seq, err)
	}
	return nil
}

// ReplayID is the Nats-Msg-Id of a replay of dead letter m:
// "replay:GUESTFLOW_DLQ:<sequence>:<stored, Unix nanoseconds>". The
// sequence alone names the dead letter for the stream's lifetime, but a
// stream deleted and created again counts from 1 again; the time the
// stream stored the letter tells two letters with one sequence apart.
func ReplayID(m *jetstream.RawStreamMsg) string {
	return fmt.Sprintf("replay:%s:%d:%d", worker.DLQStream, m.Sequence, m.Time.UnixNano())
}

// isGone reports whether a failed delete found no message. The API says so
// only in the text of the error, and in two ways: "no message found" when
// the sequence is before the stream's first or past its last, "sequence N
// not found" (err_code 10043) when it was deleted from between messages
// still stored.
func isGone(err error) bool {
	if !errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "no message found") || strings.Contains(s, "err_code=10043")
}

// wholeBody recovers the body of a dead letter that keeps only its start
// (its input did not fit the broker's max payload beside the dead-letter
// headers): the input itself, which the event stream keeps until MaxAge,
// checked against the SHA-256 the dead letter recorded. Replaying the
// start alone would only fail again as an invalid event.
func wholeBody(ctx context.Context, js jetstream.JetStream, m *jetstream.RawStreamMsg) ([]byte, error) {
	seq, err := strconv.ParseUint(m.Header.Get(worker.HeaderOriginalSequence), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("its body was truncated and it names no %s to recover it from", worker.HeaderOriginalSequence)
	}
	s, err := js.Stream(ctx, worker.Stream)
	if err != nil {
		return nil, err
	}
	in, err := s.GetMsg(ctx, seq)
	if err != nil {
		return nil, fmt.Errorf("its body was truncated, and its input (message %d of %s) cannot be read, perhaps aged out: %w", seq, worker.Stream, err)
	}
	sum := sha256.Sum256(in.Data)
	if !strings.EqualFold(hex.EncodeToString(sum[:]), m.Header.Get(worker.HeaderOriginalSHA256)) {
		return nil, fmt.Errorf("its body was truncated, and message %d of %s is not its input (SHA-256 differs; was the stream re-created?)", seq, worker.Stream)
	}
	return in.Data, nil
}

// Republished is the message a replay of dead letter m publishes.
func Republished(m *jetstream.RawStreamMsg) (*nats.Msg, error) {
	subject := m.Header.Get(worker.HeaderOriginalSubject)
	if subject == "" {
		return nil, ErrNotADeadLetter
	}
	h := nats.Header{}
	for k, vs := range m.Header {
		if k == nats.MsgIdHdr || strings.HasPrefix(k, "Guestflow-") || strings.HasPrefix(k, "Nats-") {
			continue
		}
		h[k] = append([]string(nil), vs...)
	}
	return &nats.Msg{Subject: subject, Header: h, Data: m.Data}, nil
}
