package intake_test

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/guestflow/guestflow/internal/broker"
	"github.com/guestflow/guestflow/internal/intake"
	"github.com/guestflow/guestflow/internal/timeline"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

func batchOf(ids ...string) []byte {
	var items []string
	for _, id := range ids {
		items = append(items, string(joined(id, id+"@fabrikam.com")))
	}
	return []byte("[" + strings.Join(items, ",") + "]")
}

// expectUnavailable checks a 503 with Retry-After.
func expectUnavailable(t *testing.T, resp *http.Response) {
	t.Helper()
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	expect(t, resp, http.StatusServiceUnavailable, nil)
}

func waitReady(t *testing.T, srv *intake.Server) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := srv.Ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready again: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIntakeAnswers503WhileTheBrokerIsDown stops the broker: every event
// is answered 503 with Retry-After and none 202. Started again on the same
// store, the events accepted before the stop and those sent again after
// it are each stored exactly once.
func TestIntakeAnswers503WhileTheBrokerIsDown(t *testing.T) {
	store := t.TempDir()
	ns, err := broker.Start(broker.Options{Port: -1, StoreDir: store})
	if err != nil {
		t.Fatal(err)
	}
	port := ns.Addr().(interface{ String() string }).String()
	_, portText, _ := strings.Cut(port, ":")
	p, _ := strconv.Atoi(portText)
	r := rigOn(t, ns.ClientURL())

	expect(t, r.post("application/cloudevents+json", joined("before-1", "b1@fabrikam.com")), http.StatusAccepted, nil)
	expect(t, r.post("application/cloudevents-batch+json", batchOf("before-2", "before-3")), http.StatusAccepted, nil)

	ns.Shutdown()
	ns.WaitForShutdown()
	for r.nc.IsConnected() {
		time.Sleep(10 * time.Millisecond)
	}
	if err := r.srv.Ready(); err == nil {
		t.Error("ready with the broker down")
	}
	expectUnavailable(t, r.post("application/cloudevents+json", joined("during-1", "d1@fabrikam.com")))
	expectUnavailable(t, r.post("application/cloudevents-batch+json", batchOf("during-2", "during-3")))
	expectUnavailable(t, r.post("application/json", []byte(`{"email":"d4@fabrikam.com","givenName":"D","surname":"Four","usageLocation":"PT","instance":"sales"}`),
		"ce-specversion", "1.0", "ce-id", "during-4", "ce-source", "hr/test", "ce-type", events.TypeJoined))
	expectUnavailable(t, r.do(authorized(t, http.MethodGet, r.url+"/v1/onboardings/before-1", nil)))

	ns2, err := broker.Start(broker.Options{Port: p, StoreDir: store})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns2.Shutdown)
	waitReady(t, r.srv)

	// The sender retries what was refused, and, not sure, the batch from
	// before the stop too.
	var a intake.Accepted
	expect(t, r.post("application/cloudevents+json", joined("during-1", "d1@fabrikam.com")), http.StatusAccepted, &a)
	if a.Duplicate {
		t.Error("an event answered 503 was stored")
	}
	var acks []intake.Accepted
	expect(t, r.post("application/cloudevents-batch+json", batchOf("during-2", "during-3", "before-2")), http.StatusAccepted, &acks)
	if acks[0].Duplicate || acks[1].Duplicate || !acks[2].Duplicate {
		t.Errorf("acks %+v", acks)
	}
	expect(t, r.post("application/json", []byte(`{"email":"d4@fabrikam.com","givenName":"D","surname":"Four","usageLocation":"PT","instance":"sales"}`),
		"ce-specversion", "1.0", "ce-id", "during-4", "ce-source", "hr/test", "ce-type", events.TypeJoined), http.StatusAccepted, nil)
	want := []string{"before-1", "before-2", "before-3", "during-1", "during-2", "during-3", "during-4"}
	if got := r.storedIDs(); !equal(got, want) {
		t.Errorf("stored %q, want %q", got, want)
	}
}

// TestIntakeAnswers503WithoutTheStreamOrItsPubAck: no stream (no
// responders), and a subject something else answers late (PubAck
// timeout), are 503 too.
func TestIntakeAnswers503WithoutTheStreamOrItsPubAck(t *testing.T) {
	r := newRig(t, func(o *intake.Options) { o.PublishTimeout = 300 * time.Millisecond })
	ctx := context.Background()
	if err := r.js.DeleteStream(ctx, worker.Stream); err != nil {
		t.Fatal(err)
	}
	expectUnavailable(t, r.post("application/cloudevents+json", joined("ns-1", "a@fabrikam.com")))
	expectUnavailable(t, r.post("application/cloudevents-batch+json", batchOf("ns-2", "ns-3")))
	if err := r.srv.Ready(); err == nil || !strings.Contains(err.Error(), worker.Stream) {
		t.Errorf("Ready() = %v", err)
	}
	// A subscriber that takes the message and never acks: the publish
	// waits for a PubAck that does not come.
	sub, err := r.nc.SubscribeSync(events.SubjectJoined)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	start := time.Now()
	expectUnavailable(t, r.post("application/cloudevents+json", joined("ns-4", "a@fabrikam.com")))
	expectUnavailable(t, r.post("application/cloudevents-batch+json", batchOf("ns-5", "ns-6")))
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the 503s took %s; --publish-timeout is 300ms", d)
	}
}

// TestIntakeTellsWhereAnOnboardingStands answers what `guestflow status
// --json` prints, byte for byte; 404 for an unknown id.
func TestIntakeTellsWhereAnOnboardingStands(t *testing.T) {
	note := "not shown: no tenant configured"
	r := newRig(t, func(o *intake.Options) { o.Status = timeline.Options{DirectoryNote: note} })
	expect(t, r.post("application/cloudevents+json", joined("st-1", "ana@fabrikam.com")), http.StatusAccepted, nil)
	expect(t, r.post("application/cloudevents+json", joined("st-2", "ana@fabrikam.com")), http.StatusAccepted, nil)

	resp := r.do(authorized(t, http.MethodGet, r.url+"/v1/onboardings/st-1", nil))
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s %s: %s", resp.Status, resp.Header.Get("Content-Type"), buf.String())
	}
	var want bytes.Buffer
	if _, err := timeline.Status(context.Background(), r.js, "st-1", timeline.Options{JSON: true, DirectoryNote: note}, &want); err != nil {
		t.Fatal(err)
	}
	if buf.String() != want.String() {
		t.Errorf("GET answered\n%s\nstatus --json prints\n%s", buf.String(), want.String())
	}
	if !strings.Contains(buf.String(), `"onboardingId": "st-1"`) || strings.Contains(buf.String(), "st-2") {
		t.Errorf("answer %s", buf.String())
	}
	expect(t, r.do(authorized(t, http.MethodGet, r.url+"/v1/onboardings/nobody", nil)), http.StatusNotFound, nil)
	// an id with a slash, escaped in the path
	expect(t, r.post("application/cloudevents+json", joined("workday/1001", "liam@fabrikam.com")), http.StatusAccepted, nil)
	var obs []timeline.Onboarding
	expect(t, r.do(authorized(t, http.MethodGet, r.url+"/v1/onboardings/workday%2F1001", nil)), http.StatusOK, &obs)
	if len(obs) != 1 || obs[0].ID != "workday/1001" {
		t.Errorf("GET workday%%2F1001: %+v", obs)
	}
	expect(t, r.do(authorized(t, http.MethodGet, r.url+"/v1/onboardings/workday/1001", nil)), http.StatusNotFound, nil)
	// an address finds both onboardings for status, but names neither
	expect(t, r.do(authorized(t, http.MethodGet, r.url+"/v1/onboardings/ana@fabrikam.com", nil)), http.StatusNotFound, nil)
	expect(t, r.do(mustRequest(t, http.MethodGet, r.url+"/v1/onboardings/st-1", nil)), http.StatusUnauthorized, nil)
}

// TestIntakeCountsRequests finds the intake's metrics on the default
// registry.
func TestIntakeCountsRequests(t *testing.T) {
	r := newRig(t)
	expect(t, r.post("application/cloudevents+json", joined("m-1", "ana@fabrikam.com")), http.StatusAccepted, nil)
	expect(t, r.post("text/plain", nil), http.StatusUnsupportedMediaType, nil)
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch f.GetName() {
			case "guestflow_intake_requests_total":
				if labels["route"] == "/v1/events" && m.GetCounter().GetValue() > 0 {
					found["requests "+labels["status"]] = true
				}
			case "guestflow_intake_request_duration_seconds":
				if labels["route"] == "/v1/events" && m.GetHistogram().GetSampleCount() > 0 {
					found["duration"] = true
				}
			case "guestflow_intake_events_total":
				if m.GetCounter().GetValue() > 0 {
					found["events "+labels["outcome"]] = true
				}
			}
		}
	}
	for _, k := range []string{"requests 202", "requests 415", "duration", "events accepted"} {
		if !found[k] {
			t.Errorf("no %s in the metrics (found %v)", k, found)
		}
	}
}
