package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// The permissions in nats-values.yaml are the README's table, which
// e2e/security_test.go holds guestflow's workers to; TestNATSValuesMatchTheREADME
// checks that they are. This file checks what only a server can: that the
// chart's rendering of the values is a configuration nats-server accepts,
// that each user can do, on that server, the JetStream operations its rows
// stand for (without the server refusing anything), that KEDA's query finds
// each ScaledObject's consumer, and that each user is refused what it must
// not do.

// stepIO is what each step consumes and emits.
var stepIO = map[string][2]string{
	"invite":  {"guestflow.user.joined", "guestflow.user.invited"},
	"license": {"guestflow.user.invited", "guestflow.user.licensed"},
	"role":    {"guestflow.user.licensed", "guestflow.user.role_assigned"},
	"notify":  {"guestflow.user.role_assigned", "guestflow.user.onboarded"},
}

// The streams and buckets, as docs/streams.md names them.
const (
	eventStream = "GUESTFLOW"
	dlqStream   = "GUESTFLOW_DLQ"
)

var buckets = []string{"GUESTFLOW_MEMO", "GUESTFLOW_LEASES", "GUESTFLOW_INDEX", "GUESTFLOW_THROTTLE"}

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
	opts := []nats.Option{nats.Name(user), nats.Nkey(pub, kp.Sign),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { e.v.add(user, err) })}
	if _, ok := stepIO[user]; ok {
		opts = append(opts, nats.CustomInboxPrefix(inboxOf(user)))
	}
	nc, err := nats.Connect(e.url, opts...)
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
	for _, u := range natsUsers {
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

// TestNATSUsersCanDoTheirWorkAndNoMore is the test described above.
func TestNATSUsersCanDoTheirWorkAndNoMore(t *testing.T) {
	e := startNATS(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("refused by the server:\n%s", strings.Join(e.v.all(), "\n"))
		}
	})
	ctx := context.Background()
	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		t.Cleanup(cancel)
		return c
	}

	// guestflow provision's part: the streams and buckets.
	_, pjs := e.connect(t, "provision")
	for name, subject := range map[string]string{eventStream: "guestflow.user.>", dlqStream: "guestflow.dlq.>"} {
		if _, err := pjs.CreateOrUpdateStream(short(), jetstream.StreamConfig{Name: name, Subjects: []string{subject}, Storage: jetstream.FileStorage}); err != nil {
			t.Fatalf("provision: stream %s: %v", name, err)
		}
	}
	for _, b := range buckets {
		if _, err := pjs.CreateOrUpdateKeyValue(short(), jetstream.KeyValueConfig{Bucket: b, History: 1, Storage: jetstream.FileStorage}); err != nil {
			t.Fatalf("provision: bucket %s: %v", b, err)
		}
	}

	// An input for each step, published by the intake (the first) and by
	// the operator standing in for the step before.
	_, ijs := e.connect(t, "intake")
	if _, err := ijs.Publish(short(), stepIO["invite"][0], []byte(`{}`)); err != nil {
		t.Fatalf("intake publishes a joined event: %v", err)
	}
	_, ojs := e.connect(t, "operator")
	for _, step := range steps[1:] {
		if _, err := ojs.Publish(short(), stepIO[step][0], []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}

	// Each step, under its own user, does what its rows of the table are
	// for.
	for _, step := range steps {
		if err := stepWork(short, e, t, step); err != nil {
			t.Errorf("%s: %v", step, err)
		}
	}
	if v := e.v.all(); len(v) > 0 {
		t.Fatalf("the server refused what the steps do:\n%s", strings.Join(v, "\n"))
	}

	checkScalerQuery(t, e.monitor)

	// What each user must not do. The server refuses a request by
	// dropping it, so these calls only time out; the refusal itself comes
	// to the error handler at once.
	quick := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
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
			return inc.Publish("guestflow.user.licensed", []byte("{}"))
		}},
		{"invite", "$JS.API.CONSUMER.INFO.GUESTFLOW.license", "use another step's consumer", func() error {
			_, err := ijsInvite.Consumer(quick(), eventStream, "license")
			return err
		}},
		{"invite", "$JS.API.CONSUMER.CREATE.GUESTFLOW.invite.guestflow.user.licensed", "point its consumer at another subject", func() error {
			_, err := ijsInvite.CreateOrUpdateConsumer(quick(), eventStream, jetstream.ConsumerConfig{
				Durable: "invite", FilterSubject: "guestflow.user.licensed", AckPolicy: jetstream.AckExplicitPolicy,
			})
			return err
		}},
		{"invite", "$JS.API.CONSUMER.DELETE.GUESTFLOW.invite", "delete its consumer", func() error {
			return ijsInvite.DeleteConsumer(quick(), eventStream, "invite")
		}},
		{"invite", "$JS.API.STREAM.UPDATE.GUESTFLOW", "change the stream", func() error {
			_, err := ijsInvite.UpdateStream(quick(), jetstream.StreamConfig{Name: eventStream, Subjects: []string{">"}})
			return err
		}},
		{"invite", "$JS.API.STREAM.DELETE.GUESTFLOW", "delete the stream", func() error {
			return ijsInvite.DeleteStream(quick(), eventStream)
		}},
		{"invite", "$JS.API.STREAM.PURGE.GUESTFLOW_DLQ", "purge the dead letters", func() error {
			s, err := ijsInvite.Stream(quick(), dlqStream)
			if err != nil {
				return err
			}
			return s.Purge(quick())
		}},
		{"invite", "$KV.GUESTFLOW_LEASES.license.1", "write another step's lease", func() error {
			kv, err := ijsInvite.KeyValue(quick(), "GUESTFLOW_LEASES")
			if err != nil {
				return err
			}
			_, err = kv.Put(quick(), "license.1", []byte("x"))
			return err
		}},
		{"invite", "_INBOX_guestflow_license.", "read another step's replies", func() error {
			_, err := inc.SubscribeSync(inboxOf("license") + ".>")
			return err
		}},
		{"license", "$KV.GUESTFLOW_MEMO.invite.x", "forge the invite step's memo", func() error {
			kv, err := ljs.KeyValue(quick(), "GUESTFLOW_MEMO")
			if err != nil {
				return err
			}
			_, err = kv.Put(quick(), "invite.x", []byte("{}"))
			return err
		}},
		{"intake", "guestflow.user.invited", "publish past the invite step", func() error {
			_, err := ijs.Publish(quick(), "guestflow.user.invited", []byte("{}"))
			return err
		}},
		{"intake", "guestflow.dlq.invite", "forge a dead letter", func() error {
			_, err := ijs.Publish(quick(), "guestflow.dlq.invite", []byte("{}"))
			return err
		}},
		{"provision", "$JS.API.STREAM.DELETE.GUESTFLOW", "delete a stream", func() error {
			return pjs.DeleteStream(quick(), eventStream)
		}},
	}
	for _, r := range refused {
		err := r.try()
		// A core publish or subscribe has no answer: its refusal comes
		// back asynchronously, after a round trip.
		_ = inc.Flush()
		if !e.v.await(r.user, r.subject) {
			t.Errorf("%s may %s (%s): want it refused; the call returned %v", r.user, r.what, r.subject, err)
		}
	}
}

// stepWork does as step's user the JetStream operations of its rows of the
// README's table, as guestflow's worker runtime does them: look the streams
// and buckets up, create its consumer with its filter, pull and ack its
// input, emit the next event and a dead letter, take and read a lease, read
// the invite step's memo (invite and notify: write their own), file an index
// key, take Graph budget (invite, license) or pause a Dataverse instance
// (role), and watch the pauses.
func stepWork(short func() context.Context, e *natsEnv, t *testing.T, step string) error {
	_, js := e.connect(t, step)
	for _, s := range []string{eventStream, dlqStream} {
		if _, err := js.Stream(short(), s); err != nil {
			return fmt.Errorf("stream %s: %w", s, err)
		}
	}
	kvs := map[string]jetstream.KeyValue{}
	for _, b := range buckets {
		kv, err := js.KeyValue(short(), b)
		if err != nil {
			return fmt.Errorf("bucket %s: %w", b, err)
		}
		kvs[b] = kv
	}
	if _, err := js.Consumer(short(), eventStream, step); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("looking its consumer up: %v, want not found", err)
	}
	cons, err := js.CreateConsumer(short(), eventStream, jetstream.ConsumerConfig{
		Durable: step, FilterSubject: stepIO[step][0], AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: -1,
	})
	if err != nil {
		return fmt.Errorf("creating its consumer: %w", err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		return fmt.Errorf("pulling: %w", err)
	}
	var msg jetstream.Msg
	for m := range batch.Messages() {
		msg = m
	}
	if msg == nil {
		return fmt.Errorf("pulled nothing: %v", batch.Error())
	}
	if err := msg.InProgress(); err != nil {
		return fmt.Errorf("in-progress ack: %w", err)
	}
	lease := kvs["GUESTFLOW_LEASES"]
	if _, err := lease.Create(short(), step+".1", []byte("held")); err != nil {
		return fmt.Errorf("taking a lease: %w", err)
	}
	if _, err := lease.Get(short(), step+".1"); err != nil {
		return fmt.Errorf("reading a lease: %w", err)
	}
	memoKV := kvs["GUESTFLOW_MEMO"]
	if step == "invite" || step == "notify" {
		if _, err := memoKV.Put(short(), step+".o1", []byte("{}")); err != nil {
			return fmt.Errorf("keeping its memo record: %w", err)
		}
		if _, err := memoKV.Get(short(), step+".o1"); err != nil {
			return fmt.Errorf("reading its memo record: %w", err)
		}
	}
	if _, err := memoKV.Get(short(), "invite.o1"); err != nil {
		return fmt.Errorf("reading the invite step's record: %w", err)
	}
	if _, err := kvs["GUESTFLOW_INDEX"].Put(short(), "o."+step+".1", nil); err != nil {
		return fmt.Errorf("filing an index key: %w", err)
	}
	budget := kvs["GUESTFLOW_THROTTLE"]
	w, err := budget.WatchFiltered(short(), []string{"graph.pause", "graph.pause.*", "dataverse.*.pause", "graph.mail.slot.*"})
	if err != nil {
		return fmt.Errorf("watching the pauses: %w", err)
	}
	defer w.Stop()
	if step == "role" {
		if _, err := budget.Put(short(), "dataverse.contoso.pause", []byte("1")); err != nil {
			return fmt.Errorf("pausing an instance: %w", err)
		}
		if _, err := budget.Get(short(), "dataverse.contoso.pause"); err != nil {
			return fmt.Errorf("reading the pause: %w", err)
		}
	}
	// Every step calls Graph: reads spend resource units, notify's mail
	// a budget of its own.
	if _, err := budget.Put(short(), "graph.pace."+step, []byte("{}")); err != nil {
		return fmt.Errorf("taking Graph budget: %w", err)
	}
	if _, err := budget.Get(short(), "graph.pace."+step); err != nil {
		return fmt.Errorf("reading Graph budget: %w", err)
	}
	if _, err := js.Publish(short(), stepIO[step][1], []byte("{}")); err != nil {
		return fmt.Errorf("emitting the next event: %w", err)
	}
	if _, err := js.Publish(short(), "guestflow.dlq."+step, []byte("{}")); err != nil {
		return fmt.Errorf("storing a dead letter: %w", err)
	}
	if err := msg.DoubleAck(short()); err != nil {
		return fmt.Errorf("acking: %w", err)
	}
	if err := lease.Delete(short(), step+".1"); err != nil {
		return fmt.Errorf("releasing the lease: %w", err)
	}
	return nil
}

// checkScalerQuery asks the server what KEDA's nats-jetstream scaler asks
// (GET /jsz?acc=<account>&consumers=true&config=true, as
// getNATSJetStreamMonitoringURL builds it) for every ScaledObject of the
// production overlay, and wants the account, stream and consumer it names
// to be there, matched as the scaler matches them (IsAccount: id or name).
func checkScalerQuery(t *testing.T, monitor string) {
	t.Helper()
	m := mustRender(t, overlayDir("production"))
	if len(m.scaledObjects) == 0 {
		t.Fatal("no ScaledObject")
	}
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
