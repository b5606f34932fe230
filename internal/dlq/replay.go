// Package dlq reads and replays dead letters (contract §4). The CLI's
// `guestflow dlq` commands and the tests share it.
package dlq

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/worker"
)

// ErrNotADeadLetter is returned for a message without Guestflow-Original-Subject.
var ErrNotADeadLetter = errors.New("dlq: not a dead letter (no " + worker.HeaderOriginalSubject + " header)")

// Replay republishes the dead letter at sequence seq of the DLQ stream: the
// body and the original headers, without the Guestflow-… failure headers,
// to Guestflow-Original-Subject, with a fresh Nats-Msg-Id so the duplicate
// window does not swallow it. The dead letter is deleted only after the
// PubAck, so a failed replay loses nothing; a replay that fails again comes
// back as a new dead letter.
func Replay(ctx context.Context, js jetstream.JetStream, seq uint64) error {
	s, err := js.Stream(ctx, worker.DLQStream)
	if err != nil {
		return fmt.Errorf("dlq: %w", err)
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		return fmt.Errorf("dlq: dead letter %d: %w", seq, err)
	}
	out, err := Republished(m)
	if err != nil {
		return err
	}
	if _, err := js.PublishMsg(ctx, out, jetstream.WithMsgID("replay:"+uuid.NewString()), jetstream.WithExpectStream(worker.Stream)); err != nil {
		return fmt.Errorf("dlq: republishing dead letter %d to %s: %w", seq, out.Subject, err)
	}
	if err := s.DeleteMsg(ctx, seq); err != nil {
		return fmt.Errorf("dlq: dead letter %d was replayed but not removed (replaying it again is harmless): %w", seq, err)
	}
	return nil
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
