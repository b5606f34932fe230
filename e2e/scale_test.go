package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"go.yaml.in/yaml/v3"

	"github.com/guestflow/guestflow/functions/role"
	"github.com/guestflow/guestflow/internal/app"
	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/graphsim"
	"github.com/guestflow/guestflow/internal/throttle"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// These tests hold the workers to what deploy/kubernetes/base's
// ScaledObjects promise: KEDA wakes a step at zero replicas on its first
// pending input, reading the lag from NATS' monitoring port exactly as its
// nats-jetstream scaler does, and lets it go back to zero once the input is
// through. docs/deploy.md ("Scaling from zero") gives the numbers.

// scaledObjectsFile holds the ScaledObjects the tests read their triggers
// from (the production overlay does not change them).
const scaledObjectsFile = "../deploy/kubernetes/base/scaledobjects.yaml"

// scaledObject is what the tests need of one of the ScaledObjects.
type scaledObject struct {
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		MinReplicaCount int `yaml:"minReplicaCount"`
		MaxReplicaCount int `yaml:"maxReplicaCount"`
		Triggers        []struct {
			Type     string            `yaml:"type"`
			Metadata map[string]string `yaml:"metadata"`
		} `yaml:"triggers"`
	} `yaml:"spec"`
}

// readScaledObjects returns the ScaledObjects by the consumer their
// nats-jetstream trigger reads.
func readScaledObjects(t *testing.T) map[string]scaledObject {
	t.Helper()
	f, err := os.Open(scaledObjectsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]scaledObject{}
	dec := yaml.NewDecoder(f)
	for {
		var so scaledObject
		if err := dec.Decode(&so); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", scaledObjectsFile, err)
		}
		if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "nats-jetstream" {
			t.Fatalf("%s: ScaledObject %s: want one nats-jetstream trigger", scaledObjectsFile, so.Metadata.Name)
		}
		out[so.Spec.Triggers[0].Metadata["consumer"]] = so
	}
	for _, step := range app.StepNames {
		if _, ok := out[step]; !ok {
			t.Fatalf("%s: no ScaledObject reads consumer %s", scaledObjectsFile, step)
		}
	}
	return out
}

// scaler is the ScaledObject's trigger, asking the monitoring endpoint
// monitor (host:port) instead of the cluster's Service.
func (so scaledObject) scaler(t *testing.T, monitor string) *kedaScaler {
	t.Helper()
	md := so.Spec.Triggers[0].Metadata
	num := func(key string, def int64) int64 {
		if md[key] == "" {
			return def
		}
		n, err := strconv.ParseInt(md[key], 10, 64)
		if err != nil {
			t.Fatalf("ScaledObject %s: %s %q: %v", so.Metadata.Name, key, md[key], err)
		}
		return n
	}
	return newKEDAScaler(kedaMetadata{
		Account: md["account"], AccountID: md["accountID"], Stream: md["stream"], Consumer: md["consumer"],
		// KEDA's defaults: lagThreshold 10, activationLagThreshold 0.
		LagThreshold: num("lagThreshold", 10), ActivationLagThreshold: num("activationLagThreshold", 0),
		NatsServerEndpoint: monitor,
	})
}

// replicas is the replica count KEDA and the HorizontalPodAutoscaler
// settle on for lag. An inactive trigger lets KEDA scale the Deployment to
// minReplicaCount (after cooldownPeriod); an active one gives the HPA an
// External metric with an AverageValue target of lagThreshold (KEDA's
// default metricType), for which the HPA wants ceil(lag / lagThreshold)
// replicas, within [max(1, min), max]. The HPA's 10 % tolerance and
// stabilisation windows, which only delay a change, are left out.
func (so scaledObject) replicas(s *kedaScaler, lag int64, active bool) int {
	if !active {
		return so.Spec.MinReplicaCount
	}
	n := int(math.Ceil(float64(lag) / float64(s.metadata.LagThreshold)))
	return min(max(n, 1, so.Spec.MinReplicaCount), so.Spec.MaxReplicaCount)
}

// The part of KEDA's nats-jetstream scaler that reads one server's lag,
// ported from github.com/kedacore/keda v2.20.2,
// pkg/scalers/nats_jetstream_scaler.go, with its names: the URL
// getNATSJetStreamMonitoringURL builds, the fields of /jsz's answer it
// decodes, how setNATSJetStreamMonitoringData and IsAccount find the
// account (by id or name), the stream and the consumer, the lag
// getMaxMsgLag sums (the consumer's num_pending + num_ack_pending: what
// was never delivered plus what was delivered and not yet acknowledged,
// nak'ed-with-delay messages included) and the activity
// GetMetricsAndActivity reports (lag > activationLagThreshold). Left out:
// https, and the cluster walk (with meta_cluster.cluster_size > 1 the
// scaler asks /varz for the nodes and each node for /jsz, to read the
// numbers of the consumer's leader), which a single server never takes;
// getMetricsAndActivity refuses a cluster's answer rather than pretend.
type (
	kedaMetadata struct {
		Account, AccountID, Stream, Consumer string
		LagThreshold, ActivationLagThreshold int64
		NatsServerEndpoint                   string
		monitoringURL                        string
	}
	kedaScaler struct {
		metadata kedaMetadata
		// stream is the last stream found; like the scaler's, it starts
		// empty (not nil) and is kept when a later answer lacks it.
		stream *kedaStreamDetail
		hc     *http.Client
	}
	kedaJetStreamEndpointResponse struct {
		Accounts    []kedaAccountDetail `json:"account_details"`
		MetaCluster struct {
			ClusterSize int `json:"cluster_size"`
		} `json:"meta_cluster"`
	}
	kedaAccountDetail struct {
		ID      string              `json:"id"`
		Name    string              `json:"name"`
		Streams []*kedaStreamDetail `json:"stream_detail"`
	}
	kedaStreamDetail struct {
		Name      string               `json:"name"`
		Consumers []kedaConsumerDetail `json:"consumer_detail"`
	}
	kedaConsumerDetail struct {
		StreamName     string `json:"stream_name"`
		Name           string `json:"name"`
		NumAckPending  int    `json:"num_ack_pending"`
		NumRedelivered int    `json:"num_redelivered"`
		NumWaiting     int    `json:"num_waiting"`
		NumPending     int    `json:"num_pending"`
	}
)

// newKEDAScaler is NewNATSJetStreamScaler with parseNATSJetStreamMetadata.
func newKEDAScaler(meta kedaMetadata) *kedaScaler {
	if meta.AccountID == "" {
		meta.AccountID = meta.Account
	}
	params := url.Values{}
	params.Set("acc", meta.AccountID)
	params.Set("consumers", "true")
	params.Set("config", "true")
	meta.monitoringURL = (&url.URL{Scheme: "http", Host: meta.NatsServerEndpoint, Path: "/jsz", RawQuery: params.Encode()}).String()
	return &kedaScaler{metadata: meta, stream: &kedaStreamDetail{}, hc: &http.Client{Timeout: 3 * time.Second}}
}

func (m kedaMetadata) isAccount(a kedaAccountDetail) bool {
	return a.ID == m.AccountID || a.Name == m.Account
}

// getMetricsAndActivity is GetMetricsAndActivity: the lag, and whether
// KEDA counts the trigger active (and wakes a Deployment at zero). It also
// returns the consumer's numbers, for the tests to report.
func (s *kedaScaler) getMetricsAndActivity(ctx context.Context) (lag int64, active bool, c kedaConsumerDetail, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.metadata.monitoringURL, nil)
	if err != nil {
		return 0, false, c, err
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, false, c, err
	}
	defer resp.Body.Close()
	var jsz *kedaJetStreamEndpointResponse
	if err := json.NewDecoder(resp.Body).Decode(&jsz); err != nil {
		return 0, false, c, err
	}
	if jsz.MetaCluster.ClusterSize > 1 {
		return 0, false, c, fmt.Errorf("a cluster of %d: the port leaves out the scaler's walk to the consumer's leader", jsz.MetaCluster.ClusterSize)
	}
	// setNATSJetStreamMonitoringData
	for _, a := range jsz.Accounts {
		if s.metadata.isAccount(a) {
			for _, st := range a.Streams {
				if st.Name == s.metadata.Stream {
					s.stream = st
				}
			}
		}
	}
	if s.stream == nil {
		return 0, false, c, errors.New("stream not found")
	}
	// getMaxMsgLag
	for _, c := range s.stream.Consumers {
		if c.Name == s.metadata.Consumer {
			lag := int64(c.NumPending + c.NumAckPending)
			return lag, lag > s.metadata.ActivationLagThreshold, c, nil
		}
	}
	return 0, false, c, fmt.Errorf("consumer %q not found in stream %q", s.metadata.Consumer, s.metadata.Stream)
}

// scaleBroker starts an embedded NATS server configured, in what KEDA's
// query depends on, as deploy/nats-values.yaml configures the production
// one: JetStream in the account GUESTFLOW (not the default account $G)
// and the monitoring port. Clients that give no credentials are the
// account's one user (no_auth_user), as each step's user is one of
// GUESTFLOW's in production.
func scaleBroker(t *testing.T) *server.Server {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	text := fmt.Sprintf(`jetstream { store_dir: %q }
accounts {
  GUESTFLOW {
    jetstream: enabled
    users: [ { user: guestflow, password: guestflow } ]
  }
}
no_auth_user: guestflow
`, filepath.Join(dir, "js"))
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	o.Host, o.Port = "127.0.0.1", -1
	o.HTTPHost, o.HTTPPort = "127.0.0.1", -1
	o.NoSigs, o.NoLog = true, true
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		t.Fatal("the NATS server is not ready within 10s")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// scaleSystem is a broker in account GUESTFLOW, the emulator, the test's
// own connection, and workers the test starts and stops step by step, as
// KEDA scales their Deployments.
type scaleSystem struct {
	t       *testing.T
	ns      *server.Server
	cfg     config.Config
	js      jetstream.JetStream
	o       worker.Options
	wrap    map[string]worker.Middleware
	running map[string]func() // step → stop its worker
}

func newScaleSystem(t *testing.T, so graphsim.Options) *scaleSystem {
	t.Helper()
	ns := scaleBroker(t)
	_, cfg := securityEmulator(t, so)
	cfg.NATS.URL = ns.ClientURL()
	nc, js, err := app.Connect(cfg.NATS, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	// The streams exist before any worker, as `guestflow provision` makes
	// them in a deployment.
	if _, err := app.Provision(context.Background(), js, worker.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	s := &scaleSystem{t: t, ns: ns, cfg: cfg, js: js, wrap: map[string]worker.Middleware{}, running: map[string]func(){},
		o: worker.Options{
			Backoff:      worker.Backoff(200*time.Millisecond, 2*time.Second),
			DrainTimeout: 500 * time.Millisecond,
			Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		}}
	t.Cleanup(s.stopAll)
	return s
}

// monitor is the monitoring port's host:port, natsServerMonitoringEndpoint.
func (s *scaleSystem) monitor() string { return s.ns.MonitorAddr().String() }

// start runs a worker of step on its own connection, as one pod of the
// step's Deployment does.
func (s *scaleSystem) start(step string) {
	s.t.Helper()
	if s.running[step] != nil {
		s.t.Fatalf("%s is running already", step)
	}
	nc, js, err := app.Connect(s.cfg.NATS, "e2e-"+step)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	steps, err := app.BuildSteps(ctx, s.cfg, app.Credentials{ClientID: graphsim.DefaultClientID, ClientSecret: graphsim.DefaultClientSecret},
		js, []string{step}, app.StepOptions{SyncDeadline: 10 * time.Minute, Throttle: &throttle.Options{WriteRate: 500, InviteRate: 500}})
	if err != nil {
		cancel()
		nc.Close()
		s.t.Fatal(err)
	}
	st := steps[0]
	if w := s.wrap[step]; w != nil {
		st.Handler = w(st.Handler)
	}
	done := make(chan error, 1)
	go func() { done <- worker.Run(ctx, js, st, s.o) }()
	s.running[step] = func() {
		cancel()
		if err := <-done; err != nil {
			s.t.Errorf("worker %s: %v", step, err)
		}
		nc.Close()
	}
}

// stop ends step's worker, as KEDA scaling its Deployment to zero does.
func (s *scaleSystem) stop(step string) {
	if stop := s.running[step]; stop != nil {
		stop()
		delete(s.running, step)
	}
}

func (s *scaleSystem) stopAll() {
	for _, step := range app.StepNames {
		s.stop(step)
	}
}

// waitConsumers waits until every step's durable consumer exists.
func (s *scaleSystem) waitConsumers() {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, step := range app.StepNames {
		for {
			if _, err := s.js.Consumer(context.Background(), worker.Stream, step); err == nil {
				break
			}
			if time.Now().After(deadline) {
				s.t.Fatalf("the %s worker did not create its consumer", step)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (s *scaleSystem) publishJoined(id, email string) {
	s.t.Helper()
	(&system{t: s.t, js: s.js}).publishJoined(id, events.Joined{
		Email: email, GivenName: "Ana", Surname: "Silva", UsageLocation: "PT", Instance: "sales",
	})
}

// TestScaleFromZero scales the four steps as KEDA would, from the lag its
// nats-jetstream scaler reads on the monitoring port with the production
// ScaledObjects' triggers. Before any worker has run, there is no consumer
// and the scaler cannot read a lag. Once each step has run and been
// scaled to zero, a published joined event is lag 1 on the invite
// consumer only, which activates invite (activationLagThreshold 0) and
// nothing else; a small loop then plays KEDA, starting a step's worker
// when its trigger turns active, and the steps must wake in flow order,
// each on its predecessor's output. Once the user is onboarded, every lag
// falls back to 0 and every trigger is inactive: KEDA would scale all four
// back to zero after cooldownPeriod.
func TestScaleFromZero(t *testing.T) {
	so := readScaledObjects(t)
	s := newScaleSystem(t, graphsim.Options{SyncDelay: 100 * time.Millisecond})
	ctx := context.Background()
	scalers := map[string]*kedaScaler{}
	for _, step := range app.StepNames {
		scalers[step] = so[step].scaler(t, s.monitor())
		if a := scalers[step].metadata.Account; a != "GUESTFLOW" {
			t.Fatalf("ScaledObject %s names account %q; the workers' account is GUESTFLOW", so[step].Metadata.Name, a)
		}
	}
	read := func(step string) (int64, bool, kedaConsumerDetail) {
		t.Helper()
		lag, active, c, err := scalers[step].getMetricsAndActivity(ctx)
		if err != nil {
			t.Fatalf("%s: the scaler reads no lag: %v", step, err)
		}
		return lag, active, c
	}

	// Provisioned, no worker has run yet: no consumer, no lag.
	for _, step := range app.StepNames {
		_, _, _, err := scalers[step].getMetricsAndActivity(ctx)
		if want := fmt.Sprintf("consumer %q not found", step); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s before its first worker: the scaler said %v, want %q", step, err, want)
		}
	}

	// The first rollout starts one pod per step, which creates its
	// consumer; with nothing to do, KEDA scales each to zero.
	for _, step := range app.StepNames {
		s.start(step)
	}
	s.waitConsumers()
	s.stopAll()
	for _, step := range app.StepNames {
		if lag, active, _ := read(step); lag != 0 || active {
			t.Fatalf("%s at zero with nothing published: lag %d, active %v", step, lag, active)
		}
	}

	s.publishJoined("scale-1", "ana.silva@fabrikam.com")
	lag, active, c := read("invite")
	t.Logf("published one joined event with no worker running: invite num_pending %d, num_ack_pending %d: lag %d, active %v",
		c.NumPending, c.NumAckPending, lag, active)
	if lag != 1 || !active || c.NumPending != 1 {
		t.Fatalf("invite: lag %d (num_pending %d, num_ack_pending %d), active %v; want lag 1 from num_pending, active",
			lag, c.NumPending, c.NumAckPending, active)
	}
	if n := so["invite"].replicas(scalers["invite"], lag, active); n != 1 {
		t.Errorf("KEDA would run %d invite replicas for one joined event, want 1", n)
	}
	for _, step := range app.StepNames[1:] {
		if lag, active, _ := read(step); lag != 0 || active {
			t.Errorf("%s: lag %d, active %v before invite has run; want 0, inactive", step, lag, active)
		}
	}

	// Play KEDA: poll every trigger, and start the worker of each step that
	// turns active (KEDA polls every pollingInterval, 15 s; this loop every
	// 50 ms).
	sys := &system{t: t, js: s.js}
	var woke []string
	deadline := time.Now().Add(60 * time.Second)
	for sys.count(worker.Stream, events.SubjectOnboarded) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not onboarded within 60s; woken: %v; dead letters: %v", woke, sys.deadLetters())
		}
		time.Sleep(50 * time.Millisecond)
		for _, step := range app.StepNames {
			if s.running[step] != nil {
				continue
			}
			if lag, active, _ := read(step); active {
				t.Logf("%s: lag %d, active: starting its worker", step, lag)
				woke = append(woke, step)
				s.start(step)
			}
		}
	}
	if strings.Join(woke, " ") != strings.Join(app.StepNames, " ") {
		t.Errorf("steps woken %v, want %v, each on its predecessor's output", woke, app.StepNames)
	}

	// Onboarded: every lag falls back to 0 (notify acks its input after
	// publishing the onboarded event), and KEDA would go back to zero.
	deadline = time.Now().Add(10 * time.Second)
	for _, step := range app.StepNames {
		for {
			lag, active, c := read(step)
			if lag == 0 && !active {
				if n := so[step].replicas(scalers[step], lag, active); n != 0 {
					t.Errorf("%s: KEDA would keep %d replicas with nothing to do, want 0", step, n)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: lag %d (num_pending %d, num_ack_pending %d), active %v after the onboarding; want 0, inactive",
					step, lag, c.NumPending, c.NumAckPending, active)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestScaleRoleOnInputsWaitingForTheSync measures what KEDA makes of the
// role step's inputs waiting for the Dataverse user sync. The step naks
// such an input with a delay (user_not_synced); the broker keeps it
// delivered and unacknowledged until the delay is over, so it counts in
// num_ack_pending, which the scaler adds to num_pending. With the
// consumer's MaxAckPending of inputs waiting (as many as can be: 64 at
// --concurrency 16) and none in a worker, role's trigger must ask for one
// replica, not more: one keeps it active, so that someone takes each input
// again when its delay ends, and one serves their retries. Inputs beyond
// MaxAckPending stay in num_pending, delivered to no replica however many
// there are, until a waiting one is through; the test shows that too.
func TestScaleRoleOnInputsWaitingForTheSync(t *testing.T) {
	so := readScaledObjects(t)
	// No user syncs into Dataverse while the test runs.
	s := newScaleSystem(t, graphsim.Options{SyncDelay: time.Hour})
	// Each waiting input comes back every 2 s.
	s.o.Backoff = func(int) time.Duration { return 2 * time.Second }
	var inflight, attempts atomic.Int64
	s.wrap[role.Name] = func(h worker.Handler) worker.Handler {
		return worker.HandlerFunc(func(ctx context.Context, in event.Event) (*event.Event, error) {
			inflight.Add(1)
			defer inflight.Add(-1)
			attempts.Add(1)
			return h.Handle(ctx, in)
		})
	}
	for _, step := range app.StepNames {
		s.start(step)
	}
	s.waitConsumers()
	ctx := context.Background()
	rc, err := s.js.Consumer(ctx, worker.Stream, role.Name)
	if err != nil {
		t.Fatal(err)
	}
	maxAckPending := rc.CachedInfo().Config.MaxAckPending
	sc := so[role.Name].scaler(t, s.monitor())

	// reading is the role trigger's reading taken while no role step runs:
	// every input delivered to role is then merely waiting.
	type reading struct {
		lag    int64
		active bool
		c      kedaConsumerDetail
	}
	waiting := func(what string, ok func(reading) bool) reading {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			before := attempts.Load()
			lag, active, c, err := sc.getMetricsAndActivity(ctx)
			if err != nil {
				t.Fatal(err)
			}
			r := reading{lag, active, c}
			if inflight.Load() == 0 && attempts.Load() == before && ok(r) {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not seen within 60s; last: %+v, in flight %d", what, r, inflight.Load())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	n := maxAckPending
	for i := range n {
		s.publishJoined(fmt.Sprintf("scale-wait-%02d", i), fmt.Sprintf("guest%02d@fabrikam.com", i))
	}
	r := waiting(fmt.Sprintf("all %d inputs waiting in role", n), func(r reading) bool {
		return r.c.NumAckPending == n && attempts.Load() >= int64(n)
	})
	t.Logf("%d inputs waiting for the sync, none in a worker: role num_pending %d, num_ack_pending %d, num_redelivered %d, num_waiting %d: lag %d, active %v: KEDA runs %d replicas (lagThreshold %d)",
		n, r.c.NumPending, r.c.NumAckPending, r.c.NumRedelivered, r.c.NumWaiting, r.lag, r.active,
		so[role.Name].replicas(sc, r.lag, r.active), sc.metadata.LagThreshold)
	if r.c.NumPending != 0 || r.lag != int64(n) || !r.active {
		t.Errorf("waiting inputs: num_pending %d, lag %d, active %v; want 0, %d (all ack-pending), active", r.c.NumPending, r.lag, r.active, n)
	}
	if got := so[role.Name].replicas(sc, r.lag, r.active); got != 1 {
		t.Errorf("%d inputs merely waiting for the sync make KEDA run %d role replicas, want 1: raise role's lagThreshold to at least %d (MaxAckPending) in %s",
			n, got, maxAckPending, scaledObjectsFile)
	}
	// After each input's first redelivery.
	r = waiting("every waiting input redelivered", func(r reading) bool { return r.c.NumRedelivered == n })
	t.Logf("after a redelivery each: num_pending %d, num_ack_pending %d, num_redelivered %d: lag %d",
		r.c.NumPending, r.c.NumAckPending, r.c.NumRedelivered, r.lag)
	if r.lag != int64(n) {
		t.Errorf("lag %d after the redeliveries, want %d", r.lag, n)
	}

	// More inputs than MaxAckPending: the broker delivers them to no
	// replica while the first ones wait.
	const more = 8
	for i := range more {
		s.publishJoined(fmt.Sprintf("scale-more-%d", i), fmt.Sprintf("more%d@fabrikam.com", i))
	}
	r = waiting(fmt.Sprintf("%d more inputs pending", more), func(r reading) bool { return r.c.NumPending == more })
	t.Logf("%d more: num_pending %d, num_ack_pending %d: lag %d: KEDA runs %d replicas; the broker delivers the %d to none",
		more, r.c.NumPending, r.c.NumAckPending, r.lag, so[role.Name].replicas(sc, r.lag, r.active), more)
	if r.c.NumAckPending != n {
		t.Errorf("num_ack_pending %d with %d more published, want it held at MaxAckPending %d", r.c.NumAckPending, more, n)
	}
}
