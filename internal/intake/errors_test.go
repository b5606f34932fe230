package intake_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/functions/invite"
	"github.com/guestflow/guestflow/internal/intake"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

type problem struct {
	Index  *int
	ID     string
	Reason string
	Error  string
	Fields []struct{ Field, Problem string }
}

// TestIntakeRefusesInTheDeadLettersWords posts invalid events, publishes
// the very same bytes on NATS to a running invite worker, and finds the
// 400's error to be the dead letter's Guestflow-Error word for word, with
// nothing published by the intake.
func TestIntakeRefusesInTheDeadLettersWords(t *testing.T) {
	r := newRig(t)
	bad := map[string][]byte{
		// data problems, found by the invite step
		"no-email": []byte(`{"specversion":"1.0","id":"no-email","source":"hr/test","type":"io.guestflow.user.joined.v1",` +
			`"data":{"Email":"ana@fabrikam.com","givenName":"Ana","surname":"Silva","usageLocation":"Portugal","instance":"sales","sendEmail":"false"}}`),
		// envelope problems, found by the runtime's decoder
		"wrong-type": []byte(`{"specversion":"1.0","id":"wrong-type","source":"hr/test","type":"io.guestflow.user.invited.v1","data":{}}`),
		"no-source":  []byte(`{"specversion":"1.0","id":"no-source","type":"io.guestflow.user.joined.v1","data":{"email":"a@b.co"}}`),
	}
	got := map[string]problem{}
	for id, body := range bad {
		var p problem
		expect(t, r.post("application/cloudevents+json", body), http.StatusBadRequest, &p)
		if p.ID != id || p.Reason != "invalid_event" {
			t.Errorf("%s: answer %+v", id, p)
		}
		got[id] = p
	}
	if n := len(r.stored()); n != 0 {
		t.Fatalf("%d invalid events were published", n)
	}
	if f := got["no-email"].Fields; len(f) != 3 || f[0].Field != "email" || f[1].Field != "usageLocation" || f[2].Field != "sendEmail" {
		t.Errorf("fields %+v", f)
	}

	// The invite step on the same bytes: its dead letters' errors.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- worker.Run(ctx, r.js, worker.Step{Name: invite.Name, Subject: events.SubjectJoined, Handler: invite.New(nil, nil, nil)},
			worker.Options{Logger: slog.New(slog.DiscardHandler)})
	}()
	defer func() { cancel(); <-done }()
	for _, body := range bad {
		if _, err := r.js.PublishMsg(ctx, &nats.Msg{Subject: events.SubjectJoined, Header: nats.Header{"Content-Type": {"application/cloudevents+json"}}, Data: body}); err != nil {
			t.Fatal(err)
		}
	}
	letters := map[string]string{}
	cons, err := r.js.OrderedConsumer(ctx, worker.DLQStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for len(letters) < len(bad) {
		m, err := cons.Next(jetstream.FetchMaxWait(20 * time.Second))
		if err != nil {
			t.Fatalf("dead letters: %v (have %d)", err, len(letters))
		}
		letters[m.Headers().Get(worker.HeaderOnboardingID)] = m.Headers().Get(worker.HeaderError)
	}
	for id, p := range got {
		if p.Error != letters[id] {
			t.Errorf("%s:\n intake:      %s\n dead letter: %s", id, p.Error, letters[id])
		}
	}
}

// TestIntakeBatchWithABadEventPublishesNone names each bad event by index
// and id, and publishes none of the good ones.
func TestIntakeBatchWithABadEventPublishesNone(t *testing.T) {
	r := newRig(t)
	batch := "[" + string(joined("ok-1", "ok1@fabrikam.com")) + "," +
		string(joined("bad-1", "not-an-address")) + "," +
		string(joined("ok-2", "ok2@fabrikam.com")) + "," +
		`{"specversion":"1.0","id":"bad-2","source":"hr/test","type":"io.guestflow.user.joined.v1","data":"x"}` + "]"
	var p struct {
		Error  string
		Events []problem
	}
	expect(t, r.post("application/cloudevents-batch+json", []byte(batch)), http.StatusBadRequest, &p)
	if !strings.Contains(p.Error, "2 of the batch's 4 events") || !strings.Contains(p.Error, "none was published") {
		t.Errorf("error %q", p.Error)
	}
	if len(p.Events) != 2 || *p.Events[0].Index != 1 || p.Events[0].ID != "bad-1" || *p.Events[1].Index != 3 || p.Events[1].ID != "bad-2" {
		t.Fatalf("events %+v", p.Events)
	}
	if f := p.Events[0].Fields; len(f) != 1 || f[0].Field != "email" || !strings.Contains(p.Events[0].Error, "has no @") {
		t.Errorf("bad-1: %+v", p.Events[0])
	}
	if !strings.Contains(p.Events[1].Error, "data must be a JSON object") {
		t.Errorf("bad-2: %+v", p.Events[1])
	}
	if n := len(r.stored()); n != 0 {
		t.Errorf("%d events of a refused batch were published", n)
	}
	for _, body := range []string{`{"not":"an array"}`, `[]`, `[` + string(joined("x", "x@fabrikam.com")) + `] trailing`, `[{"id":`} {
		expect(t, r.post("application/cloudevents-batch+json", []byte(body)), http.StatusBadRequest, nil)
	}
}

// TestIntakeRefusesWithoutAValidCredential: no credential, a wrong one, a
// malformed one, a bad or stale signature, or two at once are 401, and
// a credential never comes back in the answer.
func TestIntakeRefusesWithoutAValidCredential(t *testing.T) {
	var logs syncBuffer
	r := newRig(t, func(o *intake.Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	body := joined("auth-1", "ana@fabrikam.com")
	now := time.Now().Unix()
	ts := strconv.FormatInt(now, 10)
	good := intake.Sign([]byte(secretA), now, http.MethodPost, "/v1/events", body)
	defer func() {
		if logs.String() == "" {
			t.Error("nothing was logged")
		}
		for _, secret := range []string{tokenA, tokenB, secretA, "token-x-0123456789abcdef", "0123456789abcdef", good[len("sha256="):]} {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("%s reached the log:\n%s", secret, logs.String())
			}
		}
	}()
	for name, h := range map[string][]string{
		"none":            {"Authorization", ""},
		"wrong token":     {"Authorization", "Bearer token-x-0123456789abcdef"},
		"a prefix":        {"Authorization", "Bearer " + tokenA[:len(tokenA)-1]},
		"basic":           {"Authorization", "Basic " + tokenA},
		"bad signature":   {"Authorization", "", intake.HeaderTimestamp, ts, intake.HeaderSignature, intake.Sign([]byte("another-secret-0123456789"), now, "POST", "/v1/events", body)},
		"other body":      {"Authorization", "", intake.HeaderTimestamp, ts, intake.HeaderSignature, intake.Sign([]byte(secretA), now, "POST", "/v1/events", append(body, ' '))},
		"other route":     {"Authorization", "", intake.HeaderTimestamp, ts, intake.HeaderSignature, intake.Sign([]byte(secretA), now, "GET", "/v1/onboardings/auth-1", body)},
		"stale":           {"Authorization", "", intake.HeaderTimestamp, strconv.FormatInt(now-301, 10), intake.HeaderSignature, intake.Sign([]byte(secretA), now-301, "POST", "/v1/events", body)},
		"future":          {"Authorization", "", intake.HeaderTimestamp, strconv.FormatInt(now+301, 10), intake.HeaderSignature, intake.Sign([]byte(secretA), now+301, "POST", "/v1/events", body)},
		"no timestamp":    {"Authorization", "", intake.HeaderSignature, good},
		"not hex":         {"Authorization", "", intake.HeaderTimestamp, ts, intake.HeaderSignature, "sha256=zz"},
		"both":            {intake.HeaderTimestamp, ts, intake.HeaderSignature, good},
		"millisecond ts":  {"Authorization", "", intake.HeaderTimestamp, strconv.FormatInt(now*1000, 10), intake.HeaderSignature, intake.Sign([]byte(secretA), now*1000, "POST", "/v1/events", body)},
		"signature alone": {"Authorization", "", intake.HeaderSignature, good, intake.HeaderTimestamp, ""},
	} {
		resp := r.post("application/cloudevents+json", body, h...)
		var p struct{ Error string }
		expect(t, resp, http.StatusUnauthorized, &p)
		for _, secret := range []string{tokenA, tokenB, secretA, good} {
			if strings.Contains(p.Error, secret) || strings.Contains(p.Error, secret[:12]) {
				t.Errorf("%s: the answer %q repeats a credential", name, p.Error)
			}
		}
		if name == "stale" && !strings.Contains(p.Error, "away from the intake's clock; a signature is good for 5m0s either way") {
			t.Errorf("stale: %q does not say why", p.Error)
		}
		if name == "millisecond ts" && !strings.Contains(p.Error, "looks like milliseconds") {
			t.Errorf("millisecond ts: %q does not say why", p.Error)
		}
		if strings.Contains(p.Error, good[len("sha256="):][:16]) {
			t.Errorf("%s: the answer %q repeats the signature", name, p.Error)
		}
	}
	if n := len(r.stored()); n != 0 {
		t.Errorf("%d unauthenticated events were published", n)
	}
	// The signature alone, fresh, is enough.
	expect(t, r.post("application/cloudevents+json", body, "Authorization", "", intake.HeaderTimestamp, ts, intake.HeaderSignature, good), http.StatusAccepted, nil)
	// Every route needs the credential.
	for _, req := range []*http.Request{
		mustRequest(t, http.MethodGet, r.url+"/v1/onboardings/auth-1", nil),
		mustRequest(t, http.MethodOptions, r.url+"/v1/events", nil),
		mustRequest(t, http.MethodPut, r.url+"/v1/events", nil),
		mustRequest(t, http.MethodGet, r.url+"/nowhere", nil),
	} {
		expect(t, r.do(req), http.StatusUnauthorized, nil)
	}
}

func mustRequest(t *testing.T, method, url string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func authorized(t *testing.T, method, url string, body []byte) *http.Request {
	req := mustRequest(t, method, url, body)
	req.Header.Set("Authorization", "Bearer "+tokenA)
	return req
}

// TestIntakeStatusCodes: 405 for another method, 415 for another media
// type, 413 over the limits, 404 for no route.
func TestIntakeStatusCodes(t *testing.T) {
	r := newRig(t, func(o *intake.Options) { o.BodyLimit = 200 << 10 })
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		resp := r.do(authorized(t, m, r.url+"/v1/events", nil))
		if resp.Header.Get("Allow") != "OPTIONS, POST" {
			t.Errorf("%s: Allow %q", m, resp.Header.Get("Allow"))
		}
		expect(t, resp, http.StatusMethodNotAllowed, nil)
	}
	expect(t, r.do(authorized(t, http.MethodPost, r.url+"/v1/onboardings/x", nil)), http.StatusMethodNotAllowed, nil)
	expect(t, r.do(authorized(t, http.MethodGet, r.url+"/v2/events", nil)), http.StatusNotFound, nil)

	for _, ct := range []string{"", "text/plain", "application/xml", "application/cloudevents+xml", "multipart/form-data"} {
		expect(t, r.post(ct, joined("ct", "ana@fabrikam.com")), http.StatusUnsupportedMediaType, nil)
	}
	// binary mode with data that is not JSON
	expect(t, r.post("text/plain", []byte("hi"), "ce-specversion", "1.0", "ce-id", "x", "ce-source", "hr", "ce-type", events.TypeJoined), http.StatusUnsupportedMediaType, nil)
	// JSON without the binary headers is a 400 that says what is missing
	var p problem
	expect(t, r.post("application/json", joined("ct", "ana@fabrikam.com")), http.StatusBadRequest, &p)
	if !strings.Contains(p.Error, "ce-specversion") {
		t.Errorf("application/json without ce-specversion: %q", p.Error)
	}

	big := func(n int) []byte {
		return fmt.Appendf(nil, `{"specversion":"1.0","id":"big","source":"hr/test","type":"io.guestflow.user.joined.v1","pad":%q,`+
			`"data":{"email":"ana@fabrikam.com","givenName":"Ana","surname":"Silva","usageLocation":"PT","instance":"sales"}}`, strings.Repeat("x", n))
	}
	expect(t, r.post("application/cloudevents+json", big(events.MaxJoinedSize)), http.StatusRequestEntityTooLarge, nil)
	// The body fits, but not with its Content-Type: the invite step
	// counts headers too.
	fits := big(events.MaxJoinedSize - len(big(0)))
	if len(fits) != events.MaxJoinedSize {
		t.Fatalf("%d", len(fits))
	}
	expect(t, r.post("application/cloudevents+json", fits), http.StatusRequestEntityTooLarge, &p)
	if !strings.Contains(p.Error, "(body plus headers)") || p.ID != "big" {
		t.Errorf("413 %+v", p)
	}
	expect(t, r.post("application/cloudevents+json", big(events.MaxJoinedSize-len(big(0))-100)), http.StatusAccepted, nil)
	// a batch over --body-limit, and a batch under it with an event over 64 KiB
	item := string(big(60 << 10))
	expect(t, r.post("application/cloudevents-batch+json", []byte("["+strings.Repeat(item+",", 4)+item+"]")), http.StatusRequestEntityTooLarge, nil)
	var bp struct{ Events []problem }
	expect(t, r.post("application/cloudevents-batch+json", []byte("["+string(joined("small", "s@fabrikam.com"))+","+string(big(70<<10))+"]")), http.StatusRequestEntityTooLarge, &bp)
	if len(bp.Events) != 1 || *bp.Events[0].Index != 1 {
		t.Errorf("413 batch %+v", bp)
	}
	// chunked, without Content-Length: MaxBytesReader stops it, a single
	// event and a batch of events that would each fit.
	for ct, body := range map[string][]byte{
		"application/cloudevents+json":       big(events.MaxJoinedSize),
		"application/cloudevents-batch+json": []byte("[" + strings.Repeat(item+",", 4) + item + "]"),
	} {
		req := authorized(t, http.MethodPost, r.url+"/v1/events", nil)
		req.Body = ioNopCloser(bytes.NewReader(body))
		req.ContentLength = -1
		req.Header.Set("Content-Type", ct)
		expect(t, r.do(req), http.StatusRequestEntityTooLarge, nil)
	}
	if ids := r.storedIDs(); !equal(ids, []string{"big"}) {
		t.Errorf("stored %q", ids)
	}
}

// TestIntakeLimitsEachCredential answers 429 with Retry-After once a
// credential's burst is spent, while another credential goes on.
func TestIntakeLimitsEachCredential(t *testing.T) {
	r := newRig(t, func(o *intake.Options) { o.Rate, o.Burst = 0.5, 2 })
	for i := range 2 {
		expect(t, r.post("application/cloudevents+json", joined(fmt.Sprint("rl-", i), "ana@fabrikam.com")), http.StatusAccepted, nil)
	}
	resp := r.post("application/cloudevents+json", joined("rl-2", "ana@fabrikam.com"))
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 2 {
		t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	expect(t, resp, http.StatusTooManyRequests, nil)
	expect(t, r.post("application/cloudevents+json", joined("rl-2", "ana@fabrikam.com"), "Authorization", "Bearer "+tokenB), http.StatusAccepted, nil)
	// a signature is a credential of its own
	body := joined("rl-3", "ana@fabrikam.com")
	now := time.Now().Unix()
	expect(t, r.post("application/cloudevents+json", body, "Authorization", "", intake.HeaderTimestamp, strconv.FormatInt(now, 10),
		intake.HeaderSignature, intake.Sign([]byte(secretA), now, "POST", "/v1/events", body)), http.StatusAccepted, nil)
	if ids := r.storedIDs(); !equal(ids, []string{"rl-0", "rl-1", "rl-2", "rl-3"}) {
		t.Errorf("stored %q", ids)
	}
}

// TestIntakeAnswersTheWebhookHandshake: OPTIONS grants the asking origin
// the per-credential rate, per minute.
func TestIntakeAnswersTheWebhookHandshake(t *testing.T) {
	r := newRig(t, func(o *intake.Options) { o.Rate = 2.5 })
	req := authorized(t, http.MethodOptions, r.url+"/v1/events", nil)
	req.Header.Set("WebHook-Request-Origin", "eventemitter.example.com")
	req.Header.Set("WebHook-Request-Rate", "600")
	resp := r.do(req)
	expect(t, resp, http.StatusOK, nil)
	h := resp.Header
	if h.Get("WebHook-Allowed-Origin") != "eventemitter.example.com" || h.Get("WebHook-Allowed-Rate") != "150" || h.Get("Allow") != "OPTIONS, POST" {
		t.Errorf("handshake headers %v", h)
	}
	// a plain OPTIONS grants nothing
	resp = r.do(authorized(t, http.MethodOptions, r.url+"/v1/events", nil))
	expect(t, resp, http.StatusOK, nil)
	if resp.Header.Get("WebHook-Allowed-Origin") != "" {
		t.Errorf("OPTIONS without WebHook-Request-Origin granted %q", resp.Header.Get("WebHook-Allowed-Origin"))
	}
}

// TestIntakeRereadsTheTokensFile removes a token and adds another without
// a restart.
func TestIntakeRereadsTheTokensFile(t *testing.T) {
	r := newRig(t, func(o *intake.Options) { o.HMACSecretFile = "" })
	expect(t, r.post("application/cloudevents+json", joined("rot-1", "ana@fabrikam.com")), http.StatusAccepted, nil)
	const tokenC = "token-c-0123456789abcdef"
	writeFile(t, r.tokens, tokenB+"\n"+tokenC+"\n")
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp := r.post("application/cloudevents+json", joined("rot-2", "ana@fabrikam.com"))
		if resp.StatusCode == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the removed token still works: %s", resp.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	expect(t, r.post("application/cloudevents+json", joined("rot-2", "ana@fabrikam.com"), "Authorization", "Bearer "+tokenC), http.StatusAccepted, nil)
	// A file that goes bad fails closed; fixed, it works again.
	writeFile(t, r.tokens, tokenC+"\nshort\n")
	time.Sleep(50 * time.Millisecond)
	expect(t, r.post("application/cloudevents+json", joined("rot-3", "ana@fabrikam.com"), "Authorization", "Bearer "+tokenC), http.StatusUnauthorized, nil)
	if err := r.srv.Ready(); err == nil || !strings.Contains(err.Error(), "line 2") || strings.Contains(err.Error(), "short") {
		t.Errorf("Ready() = %v", err)
	}
	writeFile(t, r.tokens, tokenC+"\n")
	time.Sleep(50 * time.Millisecond)
	expect(t, r.post("application/cloudevents+json", joined("rot-3", "ana@fabrikam.com"), "Authorization", "Bearer "+tokenC), http.StatusAccepted, nil)
	if err := r.srv.Ready(); err != nil {
		t.Errorf("Ready() = %v", err)
	}
}

// TestIntakeRefusesToStartWithoutACredential, or with a credential file
// it cannot use.
func TestIntakeRefusesToStartWithoutACredential(t *testing.T) {
	r := newRig(t)
	dir := t.TempDir()
	empty, short := dir+"/empty", dir+"/short"
	writeFile(t, empty, "# nothing yet\n")
	writeFile(t, short, "abc\n")
	for name, o := range map[string]intake.Options{
		"none":        {},
		"missing":     {TokensFile: dir + "/missing"},
		"empty":       {TokensFile: empty},
		"short":       {HMACSecretFile: short},
		"ca, no cert": {ClientCA: empty},
	} {
		_, err := intake.New(r.nc, o)
		if err == nil {
			t.Errorf("%s: started", name)
			continue
		}
		if strings.Contains(err.Error(), "abc") {
			t.Errorf("%s: the error %q shows the secret", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func ioNopCloser(r *bytes.Reader) nopCloser { return nopCloser{r} }

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
