package intake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/guestflow/guestflow/internal/timeline"
	"github.com/guestflow/guestflow/pkg/events"
)

// Accepted is the answer for one stored event.
type Accepted struct {
	// OnboardingID is the event's id: a joined event is its own
	// onboarding, which GET /v1/onboardings/{id} and `guestflow status`
	// find by it.
	OnboardingID string `json:"onboardingId"`
	// Duplicate is true when the stream already held an event with this
	// id (published within its duplicate window): that one stands, and no
	// second onboarding starts.
	Duplicate bool `json:"duplicate"`
}

// postEvents publishes the request's events and answers 202 once the
// broker stored every one of them.
func (s *Server) postEvents(w http.ResponseWriter, r *http.Request, body []byte, cred credential) {
	m, rerr := requestMode(r.Header)
	if rerr != nil {
		s.answer(w, rerr)
		return
	}
	limit, what := min(s.o.BodyLimit, events.MaxJoinedSize), "a joined event"
	if m == modeBatch {
		limit, what = s.o.BodyLimit, "a batch"
	}
	if body == nil {
		if body, rerr = readBody(w, r, limit, what); rerr != nil {
			s.answer(w, rerr)
			return
		}
	} else if int64(len(body)) > limit {
		s.answer(w, tooLarge(limit, what))
		return
	}
	msgs, rerr := decode(m, r.Header, body)
	if rerr != nil {
		n := 1
		if b, ok := rerr.body.(batchProblems); ok {
			n = len(b.Events)
		}
		eventsTotal.WithLabelValues("invalid").Add(float64(n))
		s.answer(w, rerr)
		return
	}
	acks, err := s.publish(r.Context(), msgs)
	if err != nil {
		eventsTotal.WithLabelValues("unavailable").Add(float64(len(msgs)))
		s.log.Warn("events not stored; answered 503", "events", len(msgs), "credential", cred.label, "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(retryUnavailable)))
		s.answer(w, errorf(http.StatusServiceUnavailable,
			"the broker did not store the event%s (%v); nothing is lost by sending the same request again: an event it did store is answered as a duplicate",
			plural(len(msgs)), err))
		return
	}
	for _, a := range acks {
		outcome := "accepted"
		if a.Duplicate {
			outcome = "duplicate"
		}
		eventsTotal.WithLabelValues(outcome).Inc()
	}
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.log.Debug("events stored", "events", len(acks), "credential", cred.label)
	}
	if m == modeBatch {
		writeJSON(w, http.StatusAccepted, acks)
		return
	}
	writeJSON(w, http.StatusAccepted, acks[0])
}

// options answers the CloudEvents webhook validation handshake (HTTP 1.1
// Web Hooks for Event Delivery, section 4): permission for the origin
// that asks, at the rate each credential is allowed. Callbacks
// (WebHook-Request-Callback) are not made: permission is given at once.
func (s *Server) options(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Allow", "OPTIONS, POST")
	if origin := r.Header.Get("WebHook-Request-Origin"); origin != "" {
		h.Set("WebHook-Allowed-Origin", origin)
		h.Set("WebHook-Allowed-Rate", strconv.Itoa(s.lim.perMinute()))
	}
	w.WriteHeader(http.StatusOK)
}

// getOnboarding answers what `guestflow status <id> --json` prints for
// the onboarding with that id.
func (s *Server) getOnboarding(w http.ResponseWriter, r *http.Request, id string) {
	ctx, cancel := context.WithTimeout(r.Context(), statusTimeout)
	defer cancel()
	o := s.o.Status
	o.JSON = true
	var obs []timeline.Onboarding
	err := fmt.Errorf("not connected to NATS (%s)", s.nc.Status())
	if s.nc.IsConnected() {
		// Disconnected, the reads would wait for the reconnect until
		// the timeout.
		obs, err = timeline.Status(ctx, s.js, id, o, io.Discard)
	}
	switch {
	case errors.Is(err, timeline.ErrNotFound):
		s.answer(w, errorf(http.StatusNotFound, "%v", err))
		return
	case err != nil:
		s.log.Warn("reading an onboarding failed; answered 503", "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(retryUnavailable)))
		s.answer(w, errorf(http.StatusServiceUnavailable, "reading the onboarding from NATS failed: %v", err))
		return
	}
	// An argument with an @ also finds onboardings by address; this
	// route is about the one whose id it is.
	var mine []timeline.Onboarding
	for _, ob := range obs {
		if ob.ID == id {
			mine = append(mine, ob)
		}
	}
	if len(mine) == 0 {
		s.answer(w, errorf(http.StatusNotFound, "%v of %q", timeline.ErrNotFound, id))
		return
	}
	// Encoded as `guestflow status --json` encodes it.
	b, err := json.MarshalIndent(mine, "", "  ")
	if err != nil {
		s.answer(w, errorf(http.StatusInternalServerError, "%v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(b, '\n'))
}

// readBody reads r's body, refusing one over limit before it is decoded.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, what string) ([]byte, *requestError) {
	if r.ContentLength > limit {
		return nil, tooLarge(limit, what)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, tooLarge(limit, what)
	case err != nil:
		return nil, errorf(http.StatusBadRequest, "reading the body: %v", err)
	}
	return b, nil
}

func tooLarge(limit int64, what string) *requestError {
	return errorf(http.StatusRequestEntityTooLarge, "the body is over %d bytes, the most %s may be", limit, what)
}

// answer writes an error answer.
func (s *Server) answer(w http.ResponseWriter, e *requestError) {
	writeJSON(w, e.status, e.body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
