package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/memo"
	"github.com/guestflow/guestflow/internal/throttle"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// The permissions in nats-values.yaml are tested by running guestflow's
// worker runtime (internal/worker, with the memo and the Graph budget the
// steps use) under them, each step as its own user, against an embedded
// server configured with the values' accounts: an onboarding must go
// through all four steps and a refused one reach the dead letters without
// the server refusing anything; then each user tries what it must not do.

// nextOf is what each step emits.
var nextOf = map[string]struct{ subject, typ string }{
	"invite":  {events.SubjectJoined, events.TypeInvited},
	"license": {events.SubjectInvited, events.TypeLicensed},
	"role":    {events.SubjectLicensed, events.TypeRoleAssigned},
	"notify":  {events.SubjectRoleAssigned, events.TypeOnboarded},
}

// chartUnquote is the chart's nats.formatConfig rule: a JSON string
// "<< x >>" is written as x.
var chartUnquote = regexp.MustCompile(`"<<\s+(.*?)\s+>>"`)

// natsConf is nats.conf as the chart would write it for the values'
// config.merge, on a loopback port with a store in dir.
func natsConf(t *testing.T, raw []byte, dir string) []byte {
	t.Helper()
	var values struct {
		Config struct {
			Merge map[string]any `json:"merge"`
		} `json:"config"`
	}
	if err := json.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	conf := map[string]any{
		"server_name": "permissions",
		"host":        "127.0.0.1",
		"port":        -1,
		"jetstream":   map[string]any{"store_dir": dir},
	}
	for k, v := range values.Config.Merge {
		conf[k] = v
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // as the chart's toPrettyRawJson
	enc.SetIndent("", "  ")
	if err := enc.Encode(conf); err != nil {
		t.Fatal(err)
	}
	return chartUnquote.ReplaceAll(b.Bytes(), []byte("$1"))
}

// violations collects what the server refused, per user.
type violations struct {
	mu   sync.Mutex
	list []string
}

func (v *violations) add(user string, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.list = append(v.list, user+": "+err.Error())
}

func (v *violations) all() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.list...)
}

// await waits for a refusal of user that mentions subject.
func (v *violations) await(user, subject string) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, s := range v.all() {
			if strings.HasPrefix(s, user+": ") && strings.Contains(s, subject) {
				return true
			}
		}
	}
	return false
}

type natsEnv struct {
	url string
	// monitor is the base URL of the monitoring port.
	monitor string
	keys    map[string]nkeys.KeyPair
	v       *violations
	conns   []*nats.Conn
}

// connect signs in as user (a step, intake or operator).
func (e *natsEnv) connect(t *testing.T, user string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	kp := e.keys[user]
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(e.url, nats.Name(user), nats.Nkey(pub, kp.Sign),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { e.v.add(user, err) }))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	e.conns = append(e.conns, nc)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// startNATS runs an embedded server with the accounts of nats-values.yaml,
// a fresh nkey per user put where the chart puts it (the environment).
func startNATS(t *testing.T) *natsEnv {
	t.Helper()
	_, raw := loadNATSValues(t)
	e := &natsEnv{keys: map[string]nkeys.KeyPair{}, v: &violations{}}
	for _, u := range append(append([]string{}, steps...), "intake", "operator") {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := kp.PublicKey()
		t.Setenv(nkeyVariable(u), pub)
		e.keys[u] = kp
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, natsConf(t, raw, filepath.Join(dir, "js")), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("nats.conf from %s: %v", natsValuesFile, err)
	}
	opts.NoSigs, opts.NoLog = true, true
	// The monitoring port, as the chart enables it, for the scaler's query.
	opts.HTTPHost, opts.HTTPPort = "127.0.0.1", -1
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	e.url = s.ClientURL()
	e.monitor = "http://" + s.MonitorAddr().String()
	t.Cleanup(func() {
		for _, nc := range e.conns {
			nc.Close()
		}
		s.Shutdown()
		s.WaitForShutdown()
	})
	return e
}

// fakeMicrosoft answers every call with status, as Graph or Dataverse
// would, so that the budget's transports do their key-value work.
type fakeMicrosoft int

func (f fakeMicrosoft) RoundTrip(req *http.Request) (*http.Response, error) {
	h := http.Header{}
	if f == http.StatusTooManyRequests {
		h.Set("Retry-After", "1")
	}
	return &http.Response{StatusCode: int(f), Header: h, Body: io.NopCloser(strings.NewReader("{}")), Request: req}, nil
}

// stepHandler does, under the step's user, the NATS work the real step
// does: read the invite step's memo record, write its own (invite and
// notify), take Graph budget and share a 429, and emit the next event. An
// address starting with "refuse" is refused for good, so that the input
// goes to the dead letters.
func stepHandler(t *testing.T, ctx context.Context, step string, js jetstream.JetStream) worker.Handler {
	m, err := memo.Open(ctx, js)
	if err != nil {
		t.Fatalf("%s: %v", step, err)
	}
	gate, err := throttle.Open(ctx, js, throttle.Options{WriteRate: 1000, InviteRate: 1000})
	if err != nil {
		t.Fatalf("%s: %v", step, err)
	}
	call := func(ctx context.Context, rt http.RoundTripper, method, url string) error {
		req, err := http.NewRequestWithContext(ctx, method, url, nil)
		if err != nil {
			return err
		}
		resp, err := rt.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	return worker.HandlerFunc(func(ctx context.Context, in event.Event) (*event.Event, error) {
		var data struct {
			Email string `json:"email"`
		}
		if err := json.Unmarshal(in.Data(), &data); err != nil {
			return nil, failure.Permanent("test_bad_data", err)
		}
		if strings.HasPrefix(data.Email, "refuse") {
			return nil, failure.Permanent("test_refused", errors.New("refused by the test"))
		}
		id := events.OnboardingID(in)
		var rec struct{ Email string }
		if _, err := m.Get(ctx, "invite", id, &rec); err != nil {
			return nil, err
		}
		var err error
		switch step {
		case "invite":
			err = call(ctx, gate.Transport(fakeMicrosoft(http.StatusTooManyRequests)), http.MethodPost, "https://graph.microsoft.com/v1.0/invitations")
			if err == nil {
				err = m.Put(ctx, step, id, struct{ Email string }{data.Email})
			}
		case "license":
			err = call(ctx, gate.Transport(fakeMicrosoft(http.StatusOK)), http.MethodPost, "https://graph.microsoft.com/v1.0/users/u1/assignLicense")
		case "role":
			err = call(ctx, gate.DataverseTransport(fakeMicrosoft(http.StatusTooManyRequests)), http.MethodGet, "https://contoso.crm4.dynamics.com/api/data/v9.2/systemusers")
		case "notify":
			if _, err = m.Get(ctx, step, id, &rec); err == nil {
				err = m.Put(ctx, step, id, struct{ Email string }{data.Email})
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", step, err)
		}
		next, err := events.Next(in, step, nextOf[step].typ, json.RawMessage(in.Data()), time.Now())
		return &next, err
	})
}

// TestWorkersRunUnderTheirNATSUsers is the test described above.
func TestWorkersRunUnderTheirNATSUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs NATS and four workers")
	}
	e := startNATS(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("refused by the server:\n%s", strings.Join(e.v.all(), "\n"))
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var wg sync.WaitGroup
	runErrs := make(chan error, len(steps))
	for _, step := range steps {
		_, js := e.connect(t, step)
		h := stepHandler(t, ctx, step, js)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := worker.Run(ctx, js, worker.Step{Name: step, Subject: nextOf[step].subject, Handler: h},
				worker.Options{Concurrency: 2, DrainTimeout: time.Second, Logger: logger.With("step", step)})
			if err != nil && ctx.Err() == nil {
				runErrs <- fmt.Errorf("%s: %w", step, err)
			}
		}()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if t.Failed() {
			logMu.Lock()
			t.Logf("worker logs:\n%s", logs.String())
			logMu.Unlock()
		}
	})

	// The operator watches the last event and the dead letters.
	onc, ojs := e.connect(t, "operator")
	done, err := onc.SubscribeSync(events.SubjectOnboarded)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := onc.SubscribeSync(worker.DLQSubjects)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, runErrs, func() bool {
		_, err := ojs.Consumer(ctx, worker.Stream, "notify")
		return err == nil
	}, "every worker started")

	// The intake publishes two joined events.
	_, ijs := e.connect(t, "intake")
	for i, email := range []string{"ada@fabrikam.com", "refuse@fabrikam.com"} {
		ev, err := events.NewJoined(fmt.Sprintf("joined-%d", i), "test", events.Joined{
			Email: email, GivenName: "Ada", Surname: "Lovelace", UsageLocation: "GB", Instance: "sales",
		}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		header, body, err := events.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ijs.PublishMsg(ctx, &nats.Msg{Subject: events.SubjectJoined, Header: nats.Header(header), Data: body}); err != nil {
			t.Fatalf("intake publishes a joined event: %v", err)
		}
	}
	if _, err := done.NextMsg(30 * time.Second); err != nil {
		t.Fatalf("no onboarded event: %v", err)
	}
	if m, err := dead.NextMsg(30 * time.Second); err != nil {
		t.Fatalf("no dead letter: %v", err)
	} else if m.Subject != "guestflow.dlq.invite" {
		t.Fatalf("dead letter on %s, want guestflow.dlq.invite", m.Subject)
	}
	select {
	case err := <-runErrs:
		t.Fatal(err)
	default:
	}
	if v := e.v.all(); len(v) > 0 {
		t.Fatalf("the server refused what the workers do:\n%s", strings.Join(v, "\n"))
	}

	checkScalerQuery(t, e.monitor)

	// What each user must not do.
	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		t.Cleanup(cancel)
		return c
	}
	inc, ijsInvite := e.connect(t, "invite")
	_, ljs := e.connect(t, "license")
	refused := []struct {
		user, subject, what string
		try                 func() error
	}{
		{"invite", "guestflow.user.licensed", "publish another step's event", func() error {
			return inc.Publish(events.SubjectLicensed, []byte("{}"))
		}},
		{"invite", "$JS.API.CONSUMER.INFO.GUESTFLOW.license", "use another step's consumer", func() error {
			_, err := ijsInvite.Consumer(short(), worker.Stream, "license")
			return err
		}},
		{"invite", "$JS.API.CONSUMER.CREATE.GUESTFLOW.invite.guestflow.user.licensed", "point its consumer at another subject", func() error {
			_, err := ijsInvite.CreateOrUpdateConsumer(short(), worker.Stream, jetstream.ConsumerConfig{
				Durable: "invite", FilterSubject: events.SubjectLicensed, AckPolicy: jetstream.AckExplicitPolicy,
			})
			return err
		}},
		{"invite", "$JS.API.CONSUMER.DELETE.GUESTFLOW.invite", "delete its consumer", func() error {
			return ijsInvite.DeleteConsumer(short(), worker.Stream, "invite")
		}},
		{"invite", "$JS.API.STREAM.DELETE.GUESTFLOW", "delete the stream", func() error {
			return ijsInvite.DeleteStream(short(), worker.Stream)
		}},
		{"invite", "$JS.API.STREAM.PURGE.GUESTFLOW_DLQ", "purge the dead letters", func() error {
			s, err := ijsInvite.Stream(short(), worker.DLQStream)
			if err != nil {
				return err
			}
			return s.Purge(short())
		}},
		{"invite", "$KV.GUESTFLOW_LEASES.license.1", "write another step's lease", func() error {
			kv, err := ijsInvite.KeyValue(short(), worker.LeaseBucket)
			if err != nil {
				return err
			}
			_, err = kv.Put(short(), "license.1", []byte("x"))
			return err
		}},
		{"license", "$KV.GUESTFLOW_MEMO.invite.x", "forge the invite step's memo", func() error {
			kv, err := ljs.KeyValue(short(), memo.Bucket)
			if err != nil {
				return err
			}
			_, err = kv.Put(short(), "invite.x", []byte("{}"))
			return err
		}},
		{"intake", "guestflow.user.invited", "publish past the invite step", func() error {
			_, err := ijs.Publish(short(), events.SubjectInvited, []byte("{}"))
			return err
		}},
		{"intake", "guestflow.dlq.invite", "forge a dead letter", func() error {
			_, err := ijs.Publish(short(), "guestflow.dlq.invite", []byte("{}"))
			return err
		}},
	}
	for _, r := range refused {
		err := r.try()
		// A core publish has no answer: its refusal comes back
		// asynchronously, after a round trip.
		_ = inc.Flush()
		if !e.v.await(r.user, r.subject) {
			t.Errorf("%s may %s (%s): want it refused; the call returned %v", r.user, r.what, r.subject, err)
		}
	}
}

func waitFor(t *testing.T, runErrs <-chan error, ok func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-runErrs:
			t.Fatal(err)
		default:
		}
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting until %s", what)
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// checkScalerQuery asks the server what KEDA's nats-jetstream scaler asks
// (GET /jsz?acc=<account>&consumers=true&config=true, as
// getNATSJetStreamMonitoringURL builds it) for every ScaledObject of the
// production overlay, and wants the account, stream and consumer it names
// to be there, matched as the scaler matches them (IsAccount: id or name).
func checkScalerQuery(t *testing.T, monitor string) {
	t.Helper()
	m := mustRender(t, overlayDir("production"))
	for _, so := range m.scaledObjects {
		md := so.Spec.Triggers[0].Metadata
		resp, err := http.Get(monitor + "/jsz?" + url.Values{"acc": {md["account"]}, "consumers": {"true"}, "config": {"true"}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		// The fields the scaler reads (jetStreamEndpointResponse).
		var jsz struct {
			Accounts []struct {
				ID      string `json:"id"`
				Name    string `json:"name"`
				Streams []struct {
					Name      string `json:"name"`
					Consumers []struct {
						Name string `json:"name"`
					} `json:"consumer_detail"`
				} `json:"stream_detail"`
			} `json:"account_details"`
		}
		err = json.NewDecoder(resp.Body).Decode(&jsz)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, a := range jsz.Accounts {
			if a.ID != md["account"] && a.Name != md["account"] {
				continue
			}
			for _, st := range a.Streams {
				for _, c := range st.Consumers {
					found = found || st.Name == md["stream"] && c.Name == md["consumer"]
				}
			}
		}
		if !found {
			t.Errorf("ScaledObject %s: /jsz has no account %s with stream %s and consumer %s: the scaler would find no lag", so.Name, md["account"], md["stream"], md["consumer"])
		}
	}
}
