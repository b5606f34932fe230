package intake_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/intake"
	"github.com/guestflow/guestflow/pkg/events"
)

// sdkClient is the CloudEvents SDK's own HTTP client aimed at the intake.
func sdkClient(t *testing.T, r *rig, token string) cloudevents.Client {
	t.Helper()
	c, err := cloudevents.NewClientHTTP(cehttp.WithTarget(r.url+"/v1/events"), cehttp.WithHeader("Authorization", "Bearer "+token))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sdkEvent(t *testing.T, id, email string) cloudevents.Event {
	t.Helper()
	ev, err := events.NewJoined(id, "hr/sdk", events.Joined{Email: email, GivenName: "Ana", Surname: "Silva", UsageLocation: "PT", Instance: "sales"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ev.SetExtension("hrrecord", "4711")
	return ev
}

// status is the HTTP status of an SDK send's result.
func status(t *testing.T, res error) int {
	t.Helper()
	var hr *cehttp.Result
	if !errors.As(res, &hr) {
		t.Fatalf("the result %v carries no HTTP status", res)
	}
	return hr.StatusCode
}

// TestIntakeTakesTheSDKClientsStructuredAndBinaryEvents sends with the
// CloudEvents SDK's own client in both its modes and finds each event on
// GUESTFLOW, stored once under its id, carrying its extension.
func TestIntakeTakesTheSDKClientsStructuredAndBinaryEvents(t *testing.T) {
	r := newRig(t)
	c := sdkClient(t, r, tokenA)
	ctx := context.Background()
	if res := c.Send(cloudevents.WithEncodingStructured(ctx), sdkEvent(t, "sdk-structured", "ana@fabrikam.com")); status(t, res) != http.StatusAccepted {
		t.Fatalf("structured: %v", res)
	}
	if res := c.Send(cloudevents.WithEncodingBinary(ctx), sdkEvent(t, "sdk-binary", "liam@contoso.example")); status(t, res) != http.StatusAccepted {
		t.Fatalf("binary: %v", res)
	}
	msgs := r.stored()
	if got := r.storedIDs(); !equal(got, []string{"sdk-structured", "sdk-binary"}) {
		t.Fatalf("stored %q", got)
	}
	if ct := msgs[0].Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/cloudevents+json") {
		t.Errorf("the structured event is stored with Content-Type %q", ct)
	}
	bin := msgs[1].Header
	if bin.Get("ce-id") != "sdk-binary" || bin.Get("ce-hrrecord") != "4711" || bin.Get("Content-Type") != "application/json" {
		t.Errorf("the binary event is stored with headers %v", bin)
	}
	for name := range bin {
		if strings.EqualFold(name, "Authorization") || strings.HasPrefix(name, "Ce-") {
			t.Errorf("header %s went along to NATS", name)
		}
	}
	for _, m := range msgs {
		ev, _ := events.Decode(m.Subject, m.Header, m.Data)
		if ev.Extensions()["hrrecord"] != "4711" {
			t.Errorf("event %s lost its extension: %v", ev.ID(), ev.Extensions())
		}
	}
}

// TestIntakeAnswersOnboardingIDsAndDuplicates checks the 202 body: the
// onboarding id, and duplicate true for an id the stream already holds,
// which is then stored once.
func TestIntakeAnswersOnboardingIDsAndDuplicates(t *testing.T) {
	r := newRig(t)
	var first, again intake.Accepted
	expect(t, r.post("application/cloudevents+json", joined("hr-1001", "ana@fabrikam.com")), http.StatusAccepted, &first)
	expect(t, r.post("application/cloudevents+json; charset=utf-8", joined("hr-1001", "ana@fabrikam.com")), http.StatusAccepted, &again)
	if first != (intake.Accepted{OnboardingID: "hr-1001"}) || again != (intake.Accepted{OnboardingID: "hr-1001", Duplicate: true}) {
		t.Errorf("answers %+v then %+v", first, again)
	}
	if got := r.storedIDs(); !equal(got, []string{"hr-1001"}) {
		t.Errorf("stored %q", got)
	}
}

// TestIntakeTakesABatch posts a batch and gets one answer per event, in
// order, with the event the stream already had marked as a duplicate.
func TestIntakeTakesABatch(t *testing.T) {
	r := newRig(t)
	expect(t, r.post("application/cloudevents+json", joined("b-2", "b2@fabrikam.com")), http.StatusAccepted, nil)
	batch := "[" + string(joined("b-1", "b1@fabrikam.com")) + ",\n " + string(joined("b-2", "b2@fabrikam.com")) + "," + string(joined("b-3", "b3@fabrikam.com")) + "]"
	var got []intake.Accepted
	expect(t, r.post("application/cloudevents-batch+json", []byte(batch)), http.StatusAccepted, &got)
	want := []intake.Accepted{{OnboardingID: "b-1"}, {OnboardingID: "b-2", Duplicate: true}, {OnboardingID: "b-3"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("answers %+v, want %+v", got, want)
	}
	if ids := r.storedIDs(); !equal(ids, []string{"b-2", "b-1", "b-3"}) {
		t.Errorf("stored %q", ids)
	}
	// The events are stored as sent, byte for byte.
	if m := r.stored()[1]; string(m.Data) != string(joined("b-1", "b1@fabrikam.com")) {
		t.Errorf("stored body %s", m.Data)
	}
}

// TestIntakeBatchOfTheMostEvents sends the largest batch there may be, and
// one event more.
func TestIntakeBatchOfTheMostEvents(t *testing.T) {
	r := newRig(t)
	items := make([]string, intake.MaxBatch+1)
	for i := range items {
		items[i] = string(joined(fmt.Sprintf("max-%03d", i), fmt.Sprintf("u%d@fabrikam.com", i)))
	}
	var p struct{ Error string }
	expect(t, r.post("application/cloudevents-batch+json", []byte("["+strings.Join(items, ",")+"]")), http.StatusBadRequest, &p)
	if !strings.Contains(p.Error, "at most 100 events") {
		t.Errorf("error %q", p.Error)
	}
	var got []intake.Accepted
	expect(t, r.post("application/cloudevents-batch+json", []byte("["+strings.Join(items[:intake.MaxBatch], ",")+"]")), http.StatusAccepted, &got)
	if len(got) != intake.MaxBatch || got[99].OnboardingID != "max-099" || len(r.stored()) != intake.MaxBatch {
		t.Errorf("%d answers, %d stored", len(got), len(r.stored()))
	}
}

// TestIntakeDecodesPercentEncodedHeaders follows the HTTP binding: a
// binary-mode header value is percent-decoded (and a quoted one unquoted)
// before it becomes the attribute.
func TestIntakeDecodesPercentEncodedHeaders(t *testing.T) {
	r := newRig(t)
	data := `{"email":"ana@fabrikam.com","givenName":"Ana","surname":"Silva","usageLocation":"PT","instance":"sales"}`
	expect(t, r.post("application/json", []byte(data), "ce-specversion", "1.0", "ce-id", "pct%201", "ce-source", `"hr/work\"day"`,
		"ce-type", events.TypeJoined, "ce-note", "Euro%20%E2%82%AC"), http.StatusAccepted, nil)
	m := r.stored()[0]
	if m.Header.Get("ce-id") != "pct 1" || m.Header.Get("ce-source") != `hr/work"day` || m.Header.Get("ce-note") != "Euro €" {
		t.Errorf("stored headers %v", m.Header)
	}
	if m.Header.Get(jetstream.MsgIDHeader) != "pct 1" {
		t.Errorf("Nats-Msg-Id %q", m.Header.Get(jetstream.MsgIDHeader))
	}
	var p struct{ Error string }
	expect(t, r.post("application/json", []byte(data), "ce-specversion", "1.0", "ce-id", "100%", "ce-source", "hr", "ce-type", events.TypeJoined), http.StatusBadRequest, &p)
	if !strings.Contains(p.Error, "ce-id") || !strings.Contains(p.Error, "%25") {
		t.Errorf("error %q", p.Error)
	}
}

// TestIntakeConcurrentPostsAreEachStoredOnce posts from many senders at
// once, singles and batches mixed, so that they are published in groups:
// every one is answered 202 with its own id and stored exactly once.
func TestIntakeConcurrentPostsAreEachStoredOnce(t *testing.T) {
	r := newRig(t)
	const senders, each = 16, 20
	var wg sync.WaitGroup
	errs := make(chan error, senders*each)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := fmt.Sprintf("c-%02d-%02d", s, i)
				body, ct, want := joined(id, id+"@fabrikam.com"), "application/cloudevents+json", `"onboardingId":"`+id+`"`
				if i%5 == 0 {
					body, ct = batchOf(id+"-a", id+"-b"), "application/cloudevents-batch+json"
					want = `[{"onboardingId":"` + id + `-a","duplicate":false},{"onboardingId":"` + id + `-b","duplicate":false}]`
				}
				req, _ := http.NewRequest(http.MethodPost, r.url+"/v1/events", strings.NewReader(string(body)))
				req.Header.Set("Content-Type", ct)
				req.Header.Set("Authorization", "Bearer "+tokenA)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted || !strings.Contains(string(b), want) {
					errs <- fmt.Errorf("%s: %s %s", id, resp.Status, b)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ids := r.storedIDs()
	if want := senders * (each + each/5); len(ids) != want {
		t.Errorf("%d stored, want %d", len(ids), want)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("%s stored twice", id)
		}
		seen[id] = true
	}
}
