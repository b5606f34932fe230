package timeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/broker/brokertest"
	"github.com/guestflow/guestflow/internal/directory"
	"github.com/guestflow/guestflow/internal/timeline"
	"github.com/guestflow/guestflow/internal/worker"
)

func newJS(t *testing.T, streams bool) jetstream.JetStream {
	t.Helper()
	js := brokertest.JetStream(t, brokertest.URL(t))
	if streams {
		if err := worker.EnsureStreams(context.Background(), js, worker.StreamOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return js
}

func store(t *testing.T, js jetstream.JetStream, msgs ...msg) {
	t.Helper()
	for _, m := range msgs {
		if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: m.subject, Header: m.header, Data: m.body}); err != nil {
			t.Fatal(err)
		}
	}
}

// storeDeadLetter puts m on the DLQ as step's dead letter.
func storeDeadLetter(t *testing.T, js jetstream.JetStream, step, reason string, m msg) uint64 {
	t.Helper()
	l := deadLetter(0, step, reason, m, true)
	ack, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: l.Subject, Header: l.Header, Data: l.Data})
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// fakeDirectory knows one guest.
type fakeDirectory struct{ calls int }

func (f *fakeDirectory) GetUser(context.Context, string) (directory.User, error) {
	f.calls++
	return directory.User{}, errors.New("GetUser is not expected: it lacks externalUserState")
}

func (f *fakeDirectory) FindUserByMail(_ context.Context, address string) ([]directory.User, error) {
	f.calls++
	if address != "ana@fabrikam.com" {
		return nil, nil
	}
	return []directory.User{
		{ID: "someone-else", UserType: "Member", UserPrincipalName: "ana@contoso.com"},
		{ID: "u-ob-1", UserType: "Guest", UserPrincipalName: "ana_fabrikam.com#EXT#@contoso.onmicrosoft.com", ExternalUserState: "PendingAcceptance"},
	}, nil
}

func TestStatusReadsBothStreams(t *testing.T) {
	js := newJS(t, true)
	ana := flow(t, "ob-1", "ana@fabrikam.com", 5)
	liam := flow(t, "ob-2", "liam@contoso.example", 3)
	again := flow(t, "ob-3", "ana@fabrikam.com", 2)
	store(t, js, ana[0], liam[0], ana[1], liam[1], again[0], again[1], liam[2])
	seq := storeDeadLetter(t, js, "license", "no_license_seats", ana[1])
	storeDeadLetter(t, js, "role", "unknown_role", liam[2])

	var out bytes.Buffer
	dir := &fakeDirectory{}
	obs, err := timeline.Status(t.Context(), js, "Ana@Fabrikam.com", timeline.Options{Directory: dir}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(obs) != 2 || obs[0].ID != "ob-1" || obs[1].ID != "ob-3" {
		t.Fatalf("onboardings %+v", obs)
	}
	if obs[0].State.Summary != "dead-lettered at license: replay with guestflow dlq replay 1" || seq != 1 {
		t.Errorf("ob-1: %q", obs[0].State.Summary)
	}
	if obs[1].State.Summary != "waiting at license" {
		t.Errorf("ob-3: %q", obs[1].State.Summary)
	}
	text := out.String()
	for _, want := range []string{
		"onboarding ob-1: ana@fabrikam.com, instance sales\n",
		"  STEP    TIME                  AFTER  ATTEMPTS  OUTCOME\n",
		"  joined  2026-03-01T09:00:00Z  0s     -         ana@fabrikam.com joined instance sales\n",
		"  invite  2026-03-01T09:00:01Z  +1s    1         invited as ana_fabrikam.com#EXT#@contoso.onmicrosoft.com, added to group g-1\n",
		"  dead letters in GUESTFLOW_DLQ:\n",
		"    1    license  2026-03-01T09:01:00Z  1         no_license_seats  it failed: no_license_seats\n",
		"  invitation: PendingAcceptance: the guest ana_fabrikam.com#EXT#@contoso.onmicrosoft.com has not redeemed the invitation yet\n",
		"  → dead-lettered at license: replay with guestflow dlq replay 1\n",
		"\nonboarding ob-3: ana@fabrikam.com, instance sales\n",
		"  → waiting at license\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "liam") {
		t.Errorf("another person's onboarding is shown:\n%s", text)
	}

	out.Reset()
	obs, err = timeline.Status(t.Context(), js, "ob-2", timeline.Options{JSON: true, DirectoryNote: "not shown: no tenant"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	var got []struct {
		OnboardingID string `json:"onboardingId"`
		Steps        []struct {
			Step     string `json:"step"`
			Attempts int    `json:"attempts"`
		} `json:"steps"`
		DeadLetters []struct {
			Seq    uint64 `json:"seq"`
			Reason string `json:"reason"`
		} `json:"deadLetters"`
		State struct {
			Status      string   `json:"status"`
			Step        string   `json:"step"`
			DeadLetters []uint64 `json:"deadLetters"`
		} `json:"state"`
		InvitationNote string `json:"invitationNote"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if len(got) != 1 || got[0].OnboardingID != "ob-2" || len(got[0].Steps) != 3 || got[0].Steps[2].Attempts != 2 ||
		len(got[0].DeadLetters) != 1 || got[0].DeadLetters[0].Reason != "unknown_role" || got[0].State.Status != "dead-lettered" ||
		got[0].State.Step != "role" || got[0].State.DeadLetters[0] != 2 || got[0].InvitationNote != "not shown: no tenant" {
		t.Errorf("JSON %+v", got)
	}
}

func TestStatusOfNobody(t *testing.T) {
	js := newJS(t, true)
	store(t, js, flow(t, "ob-1", "ana@fabrikam.com", 1)...)
	_, err := timeline.Status(t.Context(), js, "nobody@fabrikam.com", timeline.Options{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), `no onboarding of "nobody@fabrikam.com"`) {
		t.Errorf("error %v", err)
	}
}

func TestStatusWithoutStreams(t *testing.T) {
	js := newJS(t, false)
	_, err := timeline.Status(t.Context(), js, "ana@fabrikam.com", timeline.Options{}, &bytes.Buffer{})
	if !errors.Is(err, timeline.ErrNoStream) {
		t.Errorf("error %v", err)
	}
}

func TestStatusFindsADeadLetterWhoseEventsExpired(t *testing.T) {
	js := newJS(t, true)
	ana := flow(t, "ob-1", "ana@fabrikam.com", 2)
	storeDeadLetter(t, js, "license", "no_license_seats", ana[1])
	var out bytes.Buffer
	obs, err := timeline.Status(t.Context(), js, "ana@fabrikam.com", timeline.Options{}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(obs) != 1 || obs[0].ID != "ob-1" || obs[0].State.Status != timeline.DeadLettered ||
		obs[0].Instance != "sales" || strings.Contains(out.String(), "OUTCOME") {
		t.Errorf("onboardings %+v\n%s", obs, out.String())
	}
}

// TestStatusLeavesNoConsumerBehind: every read of the event log uses an
// ordered consumer of its own, which must be gone when status returns, or
// each query would leave one on GUESTFLOW until the server drops it.
func TestStatusLeavesNoConsumerBehind(t *testing.T) {
	js := newJS(t, true)
	store(t, js, flow(t, "ob-1", "ana@fabrikam.com", 5)...)
	ctx := context.Background()
	for _, q := range []string{"ana@fabrikam.com", "ob-1", "nobody@fabrikam.com"} {
		if _, err := timeline.Status(ctx, js, q, timeline.Options{Scan: true}, &bytes.Buffer{}); err != nil && !strings.Contains(err.Error(), "no onboarding") {
			t.Fatalf("status %s: %v", q, err)
		}
	}
	s, err := js.Stream(ctx, worker.Stream)
	if err != nil {
		t.Fatal(err)
	}
	for name := range s.ConsumerNames(ctx).Name() {
		t.Errorf("consumer %s is left on %s", name, worker.Stream)
	}
}
