package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/metrics"
	"github.com/guestflow/guestflow/internal/provision"
)

// Dead-letter headers (docs/dead-letters.md).
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
	// HeaderOriginalSequence is the input's sequence in the stream it was
	// consumed from (GUESTFLOW), where the whole input stays until MaxAge
	// even when its dead letter could not keep all of it.
	HeaderOriginalSequence = "Guestflow-Original-Sequence"
	// HeaderBodyTruncated, on a dead letter whose input would not fit the
	// broker's max payload beside the dead-letter headers, is the length
	// in bytes of the input's body, of which the dead letter keeps the
	// start; HeaderOriginalSHA256 is the hex SHA-256 of the whole body, to
	// check a body recovered by HeaderOriginalSequence against.
	HeaderBodyTruncated  = "Guestflow-Body-Truncated"
	HeaderOriginalSHA256 = "Guestflow-Original-Sha256"
	// HeaderHeadersDropped is how many of the input's header values the
	// dead letter left out because of the bounds (MaxCopiedHeaders,
	// MaxCopiedHeaderBytes, or to fit the max payload). Credentials
	// (Authorization, Cookie, …) are always left out and not counted.
	HeaderHeadersDropped = "Guestflow-Headers-Dropped"
)

// giveUp dead-letters an input and then terminates it, ending its lease
// (ls is nil for an input that never got one, an invalid event). A dead
// letter that cannot be stored leaves the input to come back, with the try
// counted in its lease, until DeadLetterTries: then the input is
// terminated without one, because retrying a dead letter the DLQ keeps
// refusing would bring the input back for ever and hide the problem in
// Warn lines.
func (w *runner) giveUp(ctx context.Context, d delivery, ls *lease, failures int, v failure.Verdict, cause error) {
	lctx := context.WithoutCancel(ctx)
	log := d.log.With("reason", v.Reason)
	truncated, err := w.deadLetter(ctx, d, v, cause)
	if err == nil {
		metrics.DeadLetters.WithLabelValues(w.step.Name, v.Reason).Inc()
		if truncated {
			w.o.Stats.Truncated.Add(1)
		}
		if err := d.msg.TermWithReason(v.Reason); err != nil {
			log.Warn("term failed; a redelivery will be dead-lettered again under the same id", "err", err)
		}
		if ls != nil {
			w.leases.release(lctx, ls)
		}
		w.outcome(d, slog.LevelWarn, metrics.ResultDeadLetter, "step dead-lettered",
			append([]any{"reason", v.Reason, "err", clipErr(cause)}, remoteAttrs(cause)...)...)
		return
	}
	if dlqFull(err) {
		w.o.Stats.DLQFull.Add(1)
		err = fmt.Errorf("%s: %s is at its byte limit (nats.dlqMaxBytes) and refuses new dead letters; replay or purge some (guestflow dlq): %w",
			DLQFullReason, DLQStream, err)
	}
	// An input without a lease is dead-lettered on every delivery, so
	// its deliveries count the tries.
	tries := int(d.meta.NumDelivered)
	if ls != nil {
		ls.unstored++
		tries = ls.unstored
	}
	if tries < w.o.DeadLetterTries {
		// The outcome of this delivery: it comes back to be
		// dead-lettered again.
		w.outcome(d, slog.LevelError, metrics.ResultRetry, "dead-lettering failed; the input will be redelivered",
			"reason", v.Reason, "err", err, "tries", tries, "cause", clipErr(cause))
		if ls != nil {
			w.leases.failed(lctx, ls, failures)
		}
		// A dead letter not stored is one more failed attempt for the
		// backoff.
		w.nak(d, w.o.Backoff(failures+tries))
		return
	}
	w.o.Stats.Abandoned.Add(1)
	log.Error("dead letter could not be stored; input terminated without one: find it by its sequence in "+Stream,
		"tries", tries, "sequence", d.meta.Sequence.Stream, "subject", d.msg.Subject(),
		"err", err, "cause", clipErr(cause))
	if err := d.msg.TermWithReason("dead letter not stored: " + v.Reason); err != nil {
		log.Warn("term failed; the input will be redelivered", "err", err)
	}
	if ls != nil {
		w.leases.release(lctx, ls)
	}
}

// DLQFullReason starts the error logged for a dead letter that
// GUESTFLOW_DLQ refused because it is full.
const DLQFullReason = "dead-letter stream full"

// errCodeStoreFailed is JetStream's error code for a message a stream
// would not store, a full stream with the discard-new policy among others.
const errCodeStoreFailed jetstream.ErrorCode = 10077

// dlqFull reports whether err is the DLQ refusing a dead letter because it
// holds as many bytes (nats.dlqMaxBytes) or messages (a limit an operator
// set) as it may: discard new refuses the newest rather than drop the
// oldest. Retrying then helps only once someone replays or purges dead
// letters; the refusal is counted (Stats.DLQFull) so that an alert says
// why inputs are being abandoned.
func dlqFull(err error) bool {
	var api *jetstream.APIError
	if !errors.As(err, &api) || api.ErrorCode != errCodeStoreFailed {
		return false
	}
	return strings.Contains(api.Description, "maximum bytes exceeded") || strings.Contains(api.Description, "maximum messages exceeded")
}

// deadLetter publishes the input to guestflow.dlq.<step> with the reason
// in headers, and reports once the broker stored it (PubAck) or why not,
// and whether it had to shorten the body. A DLQ stream found deleted is
// created again, and the publish tried once more.
func (w *runner) deadLetter(ctx context.Context, d delivery, v failure.Verdict, cause error) (truncated bool, err error) {
	m, err := w.letter(d, v, cause)
	if err != nil {
		return false, err
	}
	truncated = m.Header.Get(HeaderBodyTruncated) != ""
	_, err = w.js.PublishMsg(ctx, m)
	if missing(err) {
		if rerr := w.restore(ctx, DLQStream); rerr != nil {
			return truncated, errors.Join(err, rerr)
		}
		_, err = w.js.PublishMsg(ctx, m)
	}
	return truncated, provision.Denied(w.js.Conn(), err)
}

// letter builds the dead letter: the input's body and headers, bounded,
// plus the contract's headers. Its Nats-Msg-Id is set here, not by a
// publish option, so that its size is known before it is sent: a dead
// letter that would not fit the broker's max payload keeps only as much of
// the body as fits, and says so.
func (w *runner) letter(d delivery, v failure.Verdict, cause error) (*nats.Msg, error) {
	h, dropped := copyHeaders(d.msg.Headers())
	copied := make([]string, 0, len(h))
	for k := range h {
		copied = append(copied, k)
	}
	h.Set(HeaderStep, w.step.Name)
	h.Set(HeaderReason, v.Reason)
	h.Set(HeaderError, clip(oneLine(cause.Error()), MaxErrorValue))
	h.Set(HeaderAttempts, strconv.FormatUint(d.meta.NumDelivered, 10))
	h.Set(HeaderOriginalSubject, d.msg.Subject())
	h.Set(HeaderOriginalSequence, strconv.FormatUint(d.meta.Sequence.Stream, 10))
	h.Set(HeaderFailedAt, w.o.Now().UTC().Format("2006-01-02T15:04:05Z07:00"))
	if v.Status != 0 {
		h.Set(HeaderHTTPStatus, strconv.Itoa(v.Status))
	}
	if v.RequestID != "" {
		h.Set(HeaderRequestID, clip(v.RequestID, MaxHeaderValue))
	}
	if d.onboardingID != "" {
		h.Set(HeaderOnboardingID, clip(d.onboardingID, MaxHeaderValue))
	}
	h.Set(jetstream.MsgIDHeader, fmt.Sprintf("dlq:%s:%d", w.step.Name, d.meta.Sequence.Stream))
	h.Set(jetstream.ExpectedStreamHeader, DLQStream)
	if dropped > 0 {
		h.Set(HeaderHeadersDropped, strconv.Itoa(dropped))
	}
	body := d.msg.Data()
	m := &nats.Msg{Subject: DLQPrefix + w.step.Name, Header: h, Data: body}
	limit := int(w.js.Conn().MaxPayload())
	if payload(m) <= limit {
		return m, nil
	}
	sum := sha256.Sum256(body)
	h.Set(HeaderBodyTruncated, strconv.Itoa(len(body)))
	h.Set(HeaderOriginalSHA256, hex.EncodeToString(sum[:]))
	m.Data = nil
	if payload(m) > limit {
		// Not even the headers fit (a broker with a tiny max payload):
		// the input's own headers go before the contract's.
		for _, k := range copied {
			dropped += len(h[k])
			delete(h, k)
		}
		h.Set(HeaderHeadersDropped, strconv.Itoa(dropped))
	}
	room := limit - payload(m)
	if room < 0 {
		return nil, fmt.Errorf("the dead letter's headers alone (%d bytes) exceed the broker's max payload of %d bytes", payload(m), limit)
	}
	m.Data = body[:room]
	return m, nil
}

// payload is what the broker counts against its max payload: the encoded
// headers and the body.
func payload(m *nats.Msg) int {
	return m.Size() - len(m.Subject) - len(m.Reply)
}

// oneLine folds a multi-line error (errors.Join) into one header value.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// clipErr is err's text bounded for a log line: errors may quote the
// input.
func clipErr(err error) string {
	return clip(oneLine(err.Error()), MaxErrorValue)
}
