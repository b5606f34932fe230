package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/app"
	"github.com/guestflow/guestflow/internal/broker"
	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// operatorEnv is an embedded NATS server, with or without the workers'
// streams, for the operator commands (dlq, status).
type operatorEnv struct {
	t   *testing.T
	url string
	js  jetstream.JetStream
}

func newOperatorEnv(t *testing.T, streams bool) *operatorEnv {
	t.Helper()
	ns, err := broker.Start(broker.Options{Port: -1, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, js, err := app.Connect(config.NATS{URL: ns.ClientURL()}, "operator-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if streams {
		if err := worker.EnsureStreams(context.Background(), js, worker.StreamOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return &operatorEnv{t: t, url: ns.ClientURL(), js: js}
}

// run executes guestflow with args (and --nats) in-process, with stdin.
func (e *operatorEnv) run(stdin io.Reader, args ...string) (stdout, stderr string, err error) {
	e.t.Helper()
	var out, errOut bytes.Buffer
	root := newRoot()
	root.SetArgs(append(args, "--nats", e.url))
	root.SetIn(stdin)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err = root.ExecuteContext(e.t.Context())
	return out.String(), errOut.String(), err
}

// joinedMsg is the joined event of onboarding id for email, as the
// GUESTFLOW stream and a dead letter of the invite step carry it.
func joinedMsg(t *testing.T, id, email string) (nats.Header, []byte) {
	t.Helper()
	ev, err := events.NewJoined(id, "hr/test", events.Joined{Email: email, GivenName: "Ana", Surname: "Silva",
		UsageLocation: "PT", Instance: "sales"}, time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	h, body, err := events.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	return nats.Header(h), body
}

// deadLetter stores a dead letter of step for onboarding id, failed at.
func (e *operatorEnv) deadLetter(step, reason, id string, at time.Time) uint64 {
	e.t.Helper()
	h, body := joinedMsg(e.t, id, "ana@fabrikam.com")
	h.Set(worker.HeaderStep, step)
	h.Set(worker.HeaderReason, reason)
	h.Set(worker.HeaderError, "No free seat of DYN365_ENTERPRISE_SALES is left: buy more seats or free one, then replay this dead letter.")
	h.Set(worker.HeaderAttempts, "1")
	h.Set(worker.HeaderOriginalSubject, map[string]string{"invite": events.SubjectJoined, "license": events.SubjectInvited}[step])
	h.Set(worker.HeaderFailedAt, at.UTC().Format(time.RFC3339))
	h.Set(worker.HeaderOnboardingID, id)
	ack, err := e.js.PublishMsg(context.Background(), &nats.Msg{Subject: worker.DLQPrefix + step, Header: h, Data: body})
	if err != nil {
		e.t.Fatal(err)
	}
	return ack.Sequence
}

// left lists the sequences still in the DLQ stream.
func (e *operatorEnv) left() []uint64 {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), worker.DLQStream)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []uint64
	for seq := uint64(1); ; {
		m, err := s.GetMsg(context.Background(), seq, jetstream.WithGetMsgSubject(worker.DLQSubjects))
		if err != nil {
			return out
		}
		out = append(out, m.Sequence)
		seq = m.Sequence + 1
	}
}

// threeDeadLetters stores invite 1 (invalid_event, ob-1, 3h ago), license 2
// and 3 (no_license_seats, ob-2 and ob-3, 2h and 1h ago).
func threeDeadLetters(e *operatorEnv) {
	now := time.Now()
	e.deadLetter("invite", "invalid_event", "ob-1", now.Add(-3*time.Hour))
	e.deadLetter("license", "no_license_seats", "ob-2", now.Add(-2*time.Hour))
	e.deadLetter("license", "no_license_seats", "ob-3", now.Add(-1*time.Hour))
}

func TestDLQList(t *testing.T) {
	e := newOperatorEnv(t, true)
	threeDeadLetters(e)
	out, _, err := e.run(nil, "dlq", "list", "--reason", "no_license_seats", "--since", "150m")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "SEQ  FAILED AT") || !strings.HasPrefix(lines[1], "2 ") || !strings.HasPrefix(lines[2], "3 ") {
		t.Fatalf("list:\n%s", out)
	}
	for _, want := range []string{"license", "no_license_seats", "ob-2", "No free seat of DYN365_ENTERPRISE_SALES is left"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row %q lacks %q", lines[1], want)
		}
	}
	if !strings.HasSuffix(lines[1], "…") {
		t.Errorf("the error is not truncated: %q", lines[1])
	}

	out, _, err = e.run(nil, "dlq", "list", "--step", "role")
	if err != nil || strings.TrimSpace(out) != "no dead letters match (step role)" {
		t.Errorf("an empty result: %q, %v", out, err)
	}
}

func TestDLQListJSON(t *testing.T) {
	e := newOperatorEnv(t, true)
	threeDeadLetters(e)
	out, _, err := e.run(nil, "dlq", "list", "--json", "--onboarding-id", "ob-1,ob-3")
	if err != nil {
		t.Fatal(err)
	}
	var got []struct {
		Seq     uint64              `json:"seq"`
		Subject string              `json:"subject"`
		Reason  string              `json:"reason"`
		Headers map[string][]string `json:"headers"`
		Body    struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		} `json:"body"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(got) != 2 || got[0].Seq != 1 || got[1].Seq != 3 || got[0].Subject != "guestflow.dlq.invite" ||
		got[0].Reason != "invalid_event" || got[0].Headers[worker.HeaderOnboardingID][0] != "ob-1" ||
		got[0].Body.ID != "ob-1" || got[0].Body.Type != events.TypeJoined {
		t.Errorf("JSON:\n%s", out)
	}
}

func TestDLQShow(t *testing.T) {
	e := newOperatorEnv(t, true)
	threeDeadLetters(e)
	out, _, err := e.run(nil, "dlq", "show", "2")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"dead letter 2 on guestflow.dlq.license", "Guestflow-Reason:", "no_license_seats",
		"Content-Type:", `"type": "io.guestflow.user.joined.v1"`, "guestflow dlq replay 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "dead letter 3") {
		t.Errorf("show printed more than asked:\n%s", out)
	}
	if _, _, err := e.run(nil, "dlq", "show", "9"); err == nil || !strings.Contains(err.Error(), "no dead letter 9") {
		t.Errorf("show of a missing sequence: %v", err)
	}
	if _, _, err := e.run(nil, "dlq", "show"); err == nil || !strings.Contains(err.Error(), "say which dead letters") {
		t.Errorf("show of nothing: %v", err)
	}
}

func TestDLQReplayDryRun(t *testing.T) {
	e := newOperatorEnv(t, true)
	threeDeadLetters(e)
	out, _, err := e.run(nil, "dlq", "replay", "--dry-run", "--step", "license")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "2    license  no_license_seats  ob-2        guestflow.user.invited") ||
		!strings.Contains(out, "dry run: 2 dead letters would be replayed; nothing was changed") {
		t.Errorf("dry run:\n%s", out)
	}
	if got := e.left(); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Errorf("a dry run changed the DLQ: %v", got)
	}
}

func TestDLQReplay(t *testing.T) {
	e := newOperatorEnv(t, true)
	threeDeadLetters(e)
	out, _, err := e.run(nil, "dlq", "replay", "--reason", "no_license_seats", "--rate", "0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "replayed 2 of 2 dead letters") {
		t.Errorf("replay:\n%s", out)
	}
	if got := e.left(); !slices.Equal(got, []uint64{1}) {
		t.Errorf("left %v, want only the invalid event", got)
	}
	s, err := e.js.Stream(context.Background(), worker.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(events.SubjectInvited))
	if err != nil || info.State.Subjects[events.SubjectInvited] != 2 {
		t.Errorf("republished on %s: %v, %v", events.SubjectInvited, info.State.Subjects, err)
	}
}

func TestDLQReplayNamesFailures(t *testing.T) {
	e := newOperatorEnv(t, true)
	h, body := joinedMsg(t, "ob-9", "ana@fabrikam.com")
	h.Set(worker.HeaderStep, "invite") // no Guestflow-Original-Subject: nowhere to replay it
	if _, err := e.js.PublishMsg(context.Background(), &nats.Msg{Subject: worker.DLQPrefix + "invite", Header: h, Data: body}); err != nil {
		t.Fatal(err)
	}
	e.deadLetter("invite", "unknown_instance", "ob-10", time.Now())
	out, _, err := e.run(nil, "dlq", "replay")
	if err == nil || !strings.Contains(err.Error(), "could not replay 1 of 2 dead letters: 1") {
		t.Errorf("error %v", err)
	}
	if !strings.Contains(out, "failed: dead letter 1:") || !strings.Contains(out, "replayed 1 of 2 dead letters") {
		t.Errorf("output:\n%s", out)
	}
}

func TestDLQPurgeWithYes(t *testing.T) {
	e := newOperatorEnv(t, true)
	threeDeadLetters(e)
	out, _, err := e.run(nil, "dlq", "purge", "--yes", "--step", "invite")
	if err != nil || !strings.Contains(out, "deleted 1 of 1 dead letter") {
		t.Errorf("purge: %q, %v", out, err)
	}
	if got := e.left(); !slices.Equal(got, []uint64{2, 3}) {
		t.Errorf("left %v", got)
	}
}

func TestDLQPurgeWithoutYesNeedsATerminal(t *testing.T) {
	e := newOperatorEnv(t, true)
	threeDeadLetters(e)
	_, _, err := e.run(strings.NewReader("y\n"), "dlq", "purge")
	if err == nil || !strings.Contains(err.Error(), "refusing to delete 3 dead letters without confirmation: stdin is not a terminal; pass --yes") {
		t.Errorf("purge without --yes or a terminal: %v", err)
	}
	if got := e.left(); len(got) != 3 {
		t.Errorf("deleted without confirmation: %v left", got)
	}
}

func TestDLQPurgeAsksOnATerminal(t *testing.T) {
	defer func(f func(io.Reader) bool) { stdinIsTerminal = f }(stdinIsTerminal)
	stdinIsTerminal = func(io.Reader) bool { return true }
	e := newOperatorEnv(t, true)
	threeDeadLetters(e)

	_, stderr, err := e.run(strings.NewReader("\n"), "dlq", "purge", "2", "3")
	if err == nil || !strings.Contains(err.Error(), "cancelled: nothing was deleted") {
		t.Errorf("the default answer: %v", err)
	}
	if stderr != "Delete 2 dead letters (sequence 2 or 3)? [y/N] " {
		t.Errorf("prompt %q", stderr)
	}
	out, stderr, err := e.run(strings.NewReader("y\n"), "dlq", "purge")
	if err != nil || stderr != "Delete 3 dead letters (all dead letters)? [y/N] " || !strings.Contains(out, "deleted 3 of 3") {
		t.Errorf("yes: %q %q %v", out, stderr, err)
	}
	if got := e.left(); len(got) != 0 {
		t.Errorf("left %v", got)
	}
}

func TestDLQWithoutTheStream(t *testing.T) {
	e := newOperatorEnv(t, false)
	for _, args := range [][]string{{"dlq", "list"}, {"dlq", "replay"}, {"dlq", "purge", "--yes"}, {"dlq", "show", "1"}} {
		_, _, err := e.run(nil, args...)
		if err == nil || err.Error() != "no dead letters yet: the stream GUESTFLOW_DLQ does not exist; start a worker first" {
			t.Errorf("%v: %v", args, err)
		}
	}
}

func TestDLQRejectsBadFilters(t *testing.T) {
	e := newOperatorEnv(t, true)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dlq", "list", "--step", "licence"}, `unknown step "licence"`},
		{[]string{"dlq", "list", "--since", "last tuesday"}, "--since: "},
		{[]string{"dlq", "replay", "--rate", "-1"}, "--rate must be 0"},
		{[]string{"dlq", "purge", "x"}, `"x" is not a dead letter's sequence`},
	} {
		if _, _, err := e.run(nil, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
