package dlq_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/broker/brokertest"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// newJS starts an embedded JetStream; with streams, the workers' streams
// exist as if a worker had started.
func newJS(t testing.TB, streams bool) jetstream.JetStream {
	t.Helper()
	js := brokertest.JetStream(t, brokertest.URL(t))
	if streams {
		if err := worker.EnsureStreams(context.Background(), js, worker.StreamOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return js
}

// letter is a hand-made dead letter, shaped as the worker runtime shapes
// them.
type letter struct {
	step, reason, onboarding string
	failedAt                 time.Time
	status                   int
	// noSubject leaves out Guestflow-Original-Subject: not a dead letter
	// replay can handle.
	noSubject bool
}

// input is the subject each step consumes.
var input = map[string]string{
	"invite": events.SubjectJoined, "license": events.SubjectInvited,
	"role": events.SubjectLicensed, "notify": events.SubjectRoleAssigned,
}

// put publishes l on guestflow.dlq.<step> and returns its sequence.
func put(t testing.TB, js jetstream.JetStream, l letter) uint64 {
	t.Helper()
	ack, err := js.PublishMsg(context.Background(), deadLetter(t, l))
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// deadLetter is l as the message the worker runtime would publish.
func deadLetter(t testing.TB, l letter) *nats.Msg {
	t.Helper()
	ev, err := events.NewJoined(l.onboarding, "hr/test", events.Joined{
		Email: "ana@fabrikam.com", GivenName: "Ana", Surname: "Silva", UsageLocation: "PT", Instance: "sales",
	}, l.failedAt)
	if err != nil {
		t.Fatal(err)
	}
	header, body, err := events.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	h := nats.Header(header)
	h.Set("X-Hr-Batch", "42")
	h.Set(worker.HeaderStep, l.step)
	h.Set(worker.HeaderReason, l.reason)
	h.Set(worker.HeaderError, "No free seat of DYN365_ENTERPRISE_SALES is left: buy more or free one, then replay this dead letter.")
	h.Set(worker.HeaderAttempts, "1")
	h.Set(worker.HeaderFailedAt, l.failedAt.UTC().Format(time.RFC3339))
	h.Set(worker.HeaderOnboardingID, l.onboarding)
	if !l.noSubject {
		h.Set(worker.HeaderOriginalSubject, input[l.step])
	}
	if l.status != 0 {
		h.Set(worker.HeaderHTTPStatus, strconv.Itoa(l.status))
		h.Set(worker.HeaderRequestID, "req-"+l.onboarding)
	}
	return &nats.Msg{Subject: worker.DLQPrefix + l.step, Header: h, Data: body}
}

// base is the failed-at time of the first hand-made dead letter.
var base = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// fixture stores five dead letters and deletes the second, as a replay
// would: sequences 1, 3, 4, 5 remain, an hour apart from base.
func fixture(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	for i, l := range []letter{
		{step: "invite", reason: "invalid_event", onboarding: "ob-1"},
		{step: "license", reason: "no_license_seats", onboarding: "ob-2"},
		{step: "license", reason: "no_license_seats", onboarding: "ob-3"},
		{step: "role", reason: "unknown_role", onboarding: "ob-3", status: 404},
		{step: "notify", reason: "graph_error", onboarding: "ob-4", status: 503},
	} {
		l.failedAt = base.Add(time.Duration(i) * time.Hour)
		put(t, js, l)
	}
	deleteSeq(t, js, 2)
}

func deleteSeq(t *testing.T, js jetstream.JetStream, seq uint64) {
	t.Helper()
	s, err := js.Stream(context.Background(), worker.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(context.Background(), seq); err != nil {
		t.Fatal(err)
	}
}

// remaining lists the sequences left in the DLQ stream.
func remaining(t *testing.T, js jetstream.JetStream) []uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), worker.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for seq := uint64(1); ; seq++ {
		m, err := s.GetMsg(context.Background(), seq, jetstream.WithGetMsgSubject(worker.DLQSubjects))
		if err != nil {
			return out
		}
		out = append(out, m.Sequence)
		seq = m.Sequence
	}
}
