package worker

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/failure"
)

// Dead-letter headers (contract §4).
const (
	HeaderStep            = "Guestflow-Step"
	HeaderReason          = "Guestflow-Reason"
	HeaderError           = "Guestflow-Error"
	HeaderAttempts        = "Guestflow-Attempts"
	HeaderOriginalSubject = "Guestflow-Original-Subject"
	HeaderFailedAt        = "Guestflow-Failed-At"
	HeaderHTTPStatus      = "Guestflow-Http-Status"
	HeaderRequestID       = "Guestflow-Request-Id"
	HeaderOnboardingID    = "Guestflow-Onboarding-Id"
)

// deadLetter publishes the input, body unchanged, to guestflow.dlq.<step>
// with the reason in headers, and terminates the input only after the
// dead letter's PubAck: a failure in between leaves the input to be
// redelivered, so nothing is lost. It reports whether the dead letter was
// stored.
func (w *runner) deadLetter(ctx context.Context, d delivery, v failure.Verdict, cause error) bool {
	log := w.log.With("onboardingid", d.onboardingID, "reason", v.Reason)
	h := nats.Header{}
	for k, vs := range d.msg.Headers() {
		// Control headers (Nats-Msg-Id, Nats-Expected-…) belonged to the
		// input's own publish, and a replayed input still carries the
		// previous failure's headers; neither belongs to this dead letter.
		if strings.HasPrefix(k, "Nats-") || strings.HasPrefix(k, "Guestflow-") {
			continue
		}
		h[k] = append([]string(nil), vs...)
	}
	h.Set(HeaderStep, w.step.Name)
	h.Set(HeaderReason, v.Reason)
	h.Set(HeaderError, oneLine(cause.Error()))
	h.Set(HeaderAttempts, strconv.FormatUint(d.meta.NumDelivered, 10))
	h.Set(HeaderOriginalSubject, d.msg.Subject())
	h.Set(HeaderFailedAt, w.o.Now().UTC().Format("2006-01-02T15:04:05Z07:00"))
	if v.Status != 0 {
		h.Set(HeaderHTTPStatus, strconv.Itoa(v.Status))
	}
	if v.RequestID != "" {
		h.Set(HeaderRequestID, v.RequestID)
	}
	if d.onboardingID != "" {
		h.Set(HeaderOnboardingID, d.onboardingID)
	}
	m := &nats.Msg{Subject: DLQPrefix + w.step.Name, Header: h, Data: d.msg.Data()}
	id := fmt.Sprintf("dlq:%s:%d", w.step.Name, d.meta.Sequence.Stream)
	if _, err := w.js.PublishMsg(ctx, m, jetstream.WithMsgID(id), jetstream.WithExpectStream(DLQStream)); err != nil {
		log.Error("dead-lettering failed; the input will be redelivered", "err", err)
		w.nak(d, log, w.o.Backoff(int(d.meta.NumDelivered)))
		return false
	}
	if err := d.msg.TermWithReason(v.Reason); err != nil {
		log.Warn("term failed; a redelivery will be dead-lettered again under the same id", "err", err)
	}
	log.Warn("dead-lettered", "err", cause)
	return true
}

// oneLine folds a multi-line error (errors.Join) into one header value.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
