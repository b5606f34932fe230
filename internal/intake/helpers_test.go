package intake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/broker/brokertest"
	"github.com/guestflow/guestflow/internal/intake"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// Credentials of the tests: long enough for the intake to take them.
const (
	tokenA  = "token-a-0123456789abcdef"
	tokenB  = "token-b-0123456789abcdef"
	secretA = "hmac-secret-0123456789abcdef"
)

// rig is an intake on an embedded broker whose streams exist, as they do
// once a worker has started.
type rig struct {
	t      *testing.T
	url    string // the intake's base URL
	srv    *intake.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	tokens string // the tokens file
}

// newRig starts a broker and an intake taking tokenA and tokenB (and
// secretA signatures); edit changes the options first.
func newRig(t *testing.T, edit ...func(*intake.Options)) *rig {
	t.Helper()
	natsURL := brokertest.URL(t)
	return rigOn(t, natsURL, edit...)
}

func rigOn(t *testing.T, natsURL string, edit ...func(*intake.Options)) *rig {
	t.Helper()
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := worker.EnsureStreams(ctx, js, worker.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := &rig{t: t, nc: nc, js: js, tokens: filepath.Join(dir, "tokens")}
	writeFile(t, r.tokens, "# test tokens\n"+tokenA+"\n\n"+tokenB+"\n")
	secrets := filepath.Join(dir, "hmac")
	writeFile(t, secrets, secretA+"\n")
	o := intake.Options{TokensFile: r.tokens, HMACSecretFile: secrets, ReloadInterval: 10 * time.Millisecond,
		Rate: 1000, Burst: 1000, PublishTimeout: 2 * time.Second}
	for _, e := range edit {
		e(&o)
	}
	r.srv, err = intake.New(nc, o)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(r.srv)
	t.Cleanup(hs.Close)
	r.url = hs.URL
	return r
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// joined is a valid joined event's structured JSON.
func joined(id, email string) []byte {
	return []byte(fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"hr/test","type":"io.guestflow.user.joined.v1",`+
		`"datacontenttype":"application/json","data":{"email":%q,"givenName":"Ana","surname":"Silva","usageLocation":"PT","instance":"sales"}}`, id, email))
}

// post sends body to /v1/events with the Content-Type and headers given
// ("Authorization" defaults to tokenA; give "" to send none).
func (r *rig) post(contentType string, body []byte, header ...string) *http.Response {
	r.t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.url+"/v1/events", bytes.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+tokenA)
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	return r.do(req)
}

func (r *rig) do(req *http.Request) *http.Response {
	r.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// expect checks the status and decodes the JSON answer into v (if not nil).
func expect(t *testing.T, resp *http.Response, status int, v any) {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("answer %s: %v", b, err)
		}
	}
}

// stored returns the messages on guestflow.user.joined in GUESTFLOW.
func (r *rig) stored() []*jetstream.RawStreamMsg {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := r.js.Stream(ctx, worker.Stream)
	if err != nil {
		r.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			r.t.Fatalf("message %d: %v", seq, err)
		}
		if m.Subject == events.SubjectJoined {
			out = append(out, m)
		}
	}
	return out
}

// storedIDs are the Nats-Msg-Id of the stored joined events, in order,
// after checking that each decodes as the invite step decodes it with
// that id.
func (r *rig) storedIDs() []string {
	r.t.Helper()
	var ids []string
	for _, m := range r.stored() {
		ev, err := events.Decode(m.Subject, m.Header, m.Data)
		if err != nil {
			r.t.Fatalf("stored message %d does not decode: %v", m.Sequence, err)
		}
		if got := m.Header.Get(jetstream.MsgIDHeader); got != ev.ID() {
			r.t.Errorf("stored message %d: Nats-Msg-Id %q, event id %q", m.Sequence, got, ev.ID())
		}
		ids = append(ids, ev.ID())
	}
	return ids
}

func equal(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }
