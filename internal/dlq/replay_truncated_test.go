package dlq_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/guestflow/guestflow/internal/dlq"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

func TestReplayOfATruncatedDeadLetterRepublishesTheWholeInput(t *testing.T) {
	js := newJS(t, true)
	body := bytes.Repeat([]byte("x"), 5000)
	ack, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: events.SubjectJoined, Data: body})
	if err != nil {
		t.Fatal(err)
	}
	truncated := func(sum string) uint64 {
		h := nats.Header{}
		h.Set(worker.HeaderStep, "invite")
		h.Set(worker.HeaderReason, "invalid_event")
		h.Set(worker.HeaderOriginalSubject, events.SubjectJoined)
		h.Set(worker.HeaderOriginalSequence, strconv.FormatUint(ack.Sequence, 10))
		h.Set(worker.HeaderBodyTruncated, strconv.Itoa(len(body)))
		h.Set(worker.HeaderOriginalSHA256, sum)
		a, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: worker.DLQPrefix + "invite", Header: h, Data: body[:100]})
		if err != nil {
			t.Fatal(err)
		}
		return a.Sequence
	}
	sum := sha256.Sum256(body)

	wrong := truncated(strings.Repeat("0", 64))
	if err := dlq.Replay(t.Context(), js, wrong); err == nil || !strings.Contains(err.Error(), "SHA-256 differs") {
		t.Errorf("replay of a letter whose input does not match: %v", err)
	}
	s, _ := js.Stream(t.Context(), worker.DLQStream)
	if _, err := s.GetMsg(t.Context(), wrong); err != nil {
		t.Errorf("a refused replay removed its dead letter: %v", err)
	}

	if err := dlq.Replay(t.Context(), js, truncated(hex.EncodeToString(sum[:]))); err != nil {
		t.Fatal(err)
	}
	log, _ := js.Stream(t.Context(), worker.Stream)
	got, err := log.GetLastMsgForSubject(t.Context(), events.SubjectJoined)
	if err != nil {
		t.Fatal(err)
	}
	if got.Sequence == ack.Sequence || !bytes.Equal(got.Data, body) {
		t.Errorf("replayed message %d with %d bytes, want a new message with the whole %d-byte input", got.Sequence, len(got.Data), len(body))
	}
}
