package worker_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// permanent is a step that dead-letters every input.
var permanent = worker.HandlerFunc(func(context.Context, event.Event) (*event.Event, error) {
	return nil, failure.Permanent(failure.UnknownInstance, errors.New(`instance "nope" is not configured`))
})

// joined is a valid joined event's headers and body, for id.
func joined(t *testing.T, id string) (nats.Header, []byte) {
	t.Helper()
	ev, err := events.NewJoined(id, "test", events.Joined{Email: "a@b.example", GivenName: "A", Surname: "B", UsageLocation: "PT", Instance: "sales"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	header, body, err := events.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	return nats.Header(header), body
}

// size is what the broker counts of m against its max payload.
func size(m jetstream.Msg) int {
	n := len(m.Data()) + len("NATS/1.0\r\n\r\n")
	for k, vs := range m.Headers() {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

func TestInputNearTheMaxPayloadIsDeadLetteredTruncated(t *testing.T) {
	h := newHarness(t)
	stats := new(worker.Stats)
	o := fast
	o.Stats = stats
	h.run(permanent, o)
	limit := int(h.js.Conn().MaxPayload())
	header := nats.Header{"X-Trace": {"kept"}}
	// A structured event whose message fills the max payload but for a
	// few bytes: it fits as an input, not with the dead-letter headers.
	msg := strings.Repeat("x", limit-1024)
	body := []byte(`{"specversion":"1.0","id":"big-1","source":"hr","type":"io.guestflow.user.joined.v1","datacontenttype":"application/json",` +
		`"data":{"email":"a@b.example","givenName":"A","surname":"B","usageLocation":"PT","instance":"sales","message":"` + msg + `"}}`)
	for len(body)+100 < limit { // pad to within 100 bytes of the limit
		body = append(body, ' ')
	}
	h.publishRaw(header, body)

	dl := h.next(worker.DLQStream, worker.DLQPrefix+"invite")
	sum := sha256.Sum256(body)
	want := map[string]string{
		worker.HeaderOnboardingID:     "big-1",
		worker.HeaderBodyTruncated:    strconv.Itoa(len(body)),
		worker.HeaderOriginalSHA256:   hex.EncodeToString(sum[:]),
		worker.HeaderOriginalSequence: "1",
		"X-Trace":                     "kept",
	}
	for k, v := range want {
		if got := dl.Headers().Get(k); got != v {
			t.Errorf("%s = %.80q, want %.80q", k, got, v)
		}
	}
	if n := len(dl.Data()); n == 0 || n >= len(body) || string(body[:n]) != string(dl.Data()) {
		t.Errorf("dead letter body: %d bytes, want a proper prefix of the %d-byte input", n, len(body))
	}
	if n := size(dl); n > limit {
		t.Errorf("dead letter is %d bytes, over the max payload %d", n, limit)
	}
	if info := h.settled(); info.Delivered.Consumer != 1 {
		t.Errorf("delivered %d times, want once", info.Delivered.Consumer)
	}
	// Counted before the input is terminated, so by now.
	if stats.Truncated.Load() != 1 {
		t.Errorf("Stats.Truncated = %d, want 1", stats.Truncated.Load())
	}
}

func TestSmallDeadLetterIsWhole(t *testing.T) {
	h := newHarness(t)
	h.run(permanent, fast)
	header, body := joined(t, "small-1")
	h.publishRaw(header, body)
	dl := h.next(worker.DLQStream, worker.DLQPrefix+"invite")
	if string(dl.Data()) != string(body) || dl.Headers().Get(worker.HeaderBodyTruncated) != "" || dl.Headers().Get(worker.HeaderOriginalSHA256) != "" {
		t.Errorf("a dead letter that fits must keep the body unchanged and not claim truncation: %v", dl.Headers())
	}
	if got := dl.Headers().Get(worker.HeaderOriginalSequence); got != "1" {
		t.Errorf("Guestflow-Original-Sequence %q, want 1", got)
	}
}

func TestCopiedHeadersAreBounded(t *testing.T) {
	// The broker stores at most 64 KiB of headers with a message, so
	// only a structured event's body can carry more.
	huge := "hr-" + strings.Repeat("7", 300*1024)
	large := "hr-" + strings.Repeat("7", 60*1024)
	for _, tc := range []struct {
		name  string
		input func(t *testing.T) (nats.Header, []byte)
	}{{
		name: "onboarding id of 300 KiB in a structured event",
		input: func(t *testing.T) (nats.Header, []byte) {
			return joined(t, huge)
		},
	}, {
		name: "onboarding id of 60 KiB in an invalid binary event",
		input: func(t *testing.T) (nats.Header, []byte) {
			return nats.Header{"ce-specversion": {"1.0"}, "ce-id": {large}, "ce-source": {"hr"}, "ce-type": {"nope"}}, []byte(`{}`)
		},
	}, {
		name: "a header value of 30 KiB and 100 headers",
		input: func(t *testing.T) (nats.Header, []byte) {
			h, body := joined(t, huge)
			h.Set("X-Big", strings.Repeat("b", 30*1024))
			for i := range 100 {
				h.Set(fmt.Sprintf("X-Many-%03d", i), "v")
			}
			return h, body
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			var l logs
			o := fast
			o.Logger = l.logger()
			h.run(permanent, o)
			header, body := tc.input(t)
			h.publishRaw(header, body)
			// Every value is clipped to 1 KiB, so the count bound is the
			// one that drops.
			values := 0
			for _, vs := range header {
				values += len(vs)
			}
			dropped := ""
			if values > worker.MaxCopiedHeaders {
				dropped = strconv.Itoa(values - worker.MaxCopiedHeaders)
			}
			dl := h.next(worker.DLQStream, worker.DLQPrefix+"invite")
			id := dl.Headers().Get(worker.HeaderOnboardingID)
			if len(id) > worker.MaxHeaderValue || !strings.HasPrefix(id, "hr-777") || !strings.Contains(id, "sha256") {
				t.Errorf("Guestflow-Onboarding-Id is %d bytes (%.40q…): want at most %d, recognisable by its start and hash",
					len(id), id, worker.MaxHeaderValue)
			}
			for k, vs := range dl.Headers() {
				for _, v := range vs {
					if len(v) > worker.MaxErrorValue || (k != worker.HeaderError && len(v) > worker.MaxHeaderValue) {
						t.Errorf("header %s is %d bytes", k, len(v))
					}
				}
			}
			if got := dl.Headers().Get(worker.HeaderHeadersDropped); got != dropped {
				t.Errorf("Guestflow-Headers-Dropped %q, want %q", got, dropped)
			}
			l.wait(t, "step dead-lettered")
			for _, r := range l.all(slog.LevelDebug) {
				for k, v := range r.attrs {
					if len(v) > worker.MaxErrorValue {
						t.Errorf("log %q: attribute %s is %d bytes", r.msg, k, len(v))
					}
				}
			}
		})
	}
}

func TestCredentialsAreNotDeadLettered(t *testing.T) {
	h := newHarness(t)
	h.run(permanent, fast)
	header, body := joined(t, "cred-1")
	for _, k := range []string{"Authorization", "cookie", "PROXY-AUTHORIZATION", "Set-Cookie"} {
		header.Set(k, "secret")
	}
	header.Set("X-Trace", "kept")
	h.publishRaw(header, body)
	dl := h.next(worker.DLQStream, worker.DLQPrefix+"invite")
	for k, vs := range dl.Headers() {
		if strings.Contains(strings.Join(vs, ","), "secret") {
			t.Errorf("dead letter kept credential header %s", k)
		}
	}
	if dl.Headers().Get("X-Trace") != "kept" || dl.Headers().Get(worker.HeaderHeadersDropped) != "" {
		t.Errorf("other headers must be kept, and credentials not counted as dropped: %v", dl.Headers())
	}
}

func TestDeadLetterRefusedTooOftenTerminatesTheInput(t *testing.T) {
	h := newHarness(t)
	stats := new(worker.Stats)
	var l logs
	var calls atomic.Int32
	o := fast
	o.Stats = stats
	o.Logger = l.logger()
	h.run(worker.HandlerFunc(func(ctx context.Context, in event.Event) (*event.Event, error) {
		calls.Add(1)
		return permanent(ctx, in)
	}), o)
	// A DLQ that refuses every dead letter (too large for it), under the
	// contract's name, so that it is not re-created.
	ctx := context.Background()
	if err := h.js.DeleteStream(ctx, worker.DLQStream); err != nil {
		t.Fatal(err)
	}
	if _, err := h.js.CreateStream(ctx, jetstream.StreamConfig{Name: worker.DLQStream, Subjects: []string{worker.DLQSubjects}, MaxMsgSize: 64}); err != nil {
		t.Fatal(err)
	}
	h.publishJoined("lost-1")
	h.settled()
	if got := stats.Abandoned.Load(); got != 1 {
		t.Errorf("Stats.Abandoned = %d, want 1", got)
	}
	if got := calls.Load(); got != worker.DefaultDeadLetterTries {
		t.Errorf("%d deliveries, want the %d dead-letter tries", got, worker.DefaultDeadLetterTries)
	}
	if n := h.count(worker.DLQStream, worker.DLQPrefix+"invite"); n != 0 {
		t.Errorf("%d dead letters stored in a DLQ that refuses them", n)
	}
	var found bool
	for _, r := range l.all(slog.LevelError) {
		if strings.Contains(r.msg, "input terminated without one") && r.attrs["onboarding_id"] == "lost-1" && r.attrs["sequence"] == "1" {
			found = true
		}
	}
	if !found {
		t.Errorf("no Error log naming the abandoned input: %v", l.all(slog.LevelError))
	}
}
