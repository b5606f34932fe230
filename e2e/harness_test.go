package e2e

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/app"
	"github.com/guestflow/guestflow/internal/broker"
	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/graphsim"
	"github.com/guestflow/guestflow/internal/httpclient"
	"github.com/guestflow/guestflow/internal/throttle"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// system is one running guestflow: broker, emulator and workers.
type system struct {
	t   *testing.T
	sim *graphsim.Sim
	cfg config.Config
	nc  *nats.Conn
	js  jetstream.JetStream
	hc  *http.Client
}

// setup is what a test may change before the workers start.
type setup struct {
	// configure edits the emulator's configuration (instances, endpoints).
	configure func(*config.Config, *graphsim.Sim)
	// credentials the workers use; the emulator's app by default.
	credentials app.Credentials
	// wrap wraps a step's handler, e.g. to crash after its side effects.
	wrap map[string]worker.Middleware
	// worker tunes the runtime; Backoff and Logger have test defaults.
	worker worker.Options
	steps  app.StepOptions
}

// start runs a broker, the emulator and all four workers; mods change the
// setup.
func start(t *testing.T, opts graphsim.Options, mods ...func(*setup)) *system {
	t.Helper()
	su := setup{
		wrap:        map[string]worker.Middleware{},
		credentials: app.Credentials{ClientID: graphsim.DefaultClientID, ClientSecret: graphsim.DefaultClientSecret},
		// The shared budget runs as in production, at a rate that does not
		// slow the tests down.
		steps: app.StepOptions{SyncDeadline: time.Minute, Throttle: &throttle.Options{WriteRate: 500, InviteRate: 500}},
		worker: worker.Options{
			Backoff: worker.Backoff(200*time.Millisecond, 2*time.Second),
			// A test ends with steps still waiting (a sync, a backoff):
			// hand them back at once rather than after the 25 s default.
			DrainTimeout: 500 * time.Millisecond,
			Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		},
	}
	for _, m := range mods {
		m(&su)
	}
	ns, err := broker.Start(broker.Options{Port: -1, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	sim, err := graphsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, sim.CAPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := sim.Config()
	cfg.Tenant.CAFile = ca
	cfg.NATS.URL = ns.ClientURL()
	if su.configure != nil {
		su.configure(&cfg, sim)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the emulator's configuration is invalid: %v", err)
	}
	nc, js, err := app.Connect(cfg.NATS, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	if err := worker.EnsureStreams(ctx, js, worker.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	steps, err := app.BuildSteps(ctx, cfg, su.credentials, js, app.StepNames, su.steps)
	if err != nil {
		t.Fatal(err)
	}
	running := make(chan error, len(steps))
	for _, s := range steps {
		if w := su.wrap[s.Name]; w != nil {
			s.Handler = w(s.Handler)
		}
		go func() { running <- worker.Run(ctx, js, s, su.worker) }()
	}
	go func() {
		for range steps {
			if err := <-running; err != nil {
				t.Errorf("worker: %v", err)
			}
		}
		close(done)
	}()
	return &system{t: t, sim: sim, cfg: cfg, nc: nc, js: js, hc: httpclient.WithPool(sim.CertPool(), 10*time.Second)}
}

// publish sends raw message parts on the joined subject, like any NATS client.
func (s *system) publish(header nats.Header, body []byte) {
	s.t.Helper()
	m := &nats.Msg{Subject: events.SubjectJoined, Header: header, Data: body}
	if _, err := s.js.PublishMsg(context.Background(), m); err != nil {
		s.t.Fatal(err)
	}
}

// await collects onboarded events until every id in ids has one.
func (s *system) await(ids ...string) map[string]event.Event {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cons, err := s.js.OrderedConsumer(ctx, worker.Stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.SubjectOnboarded}})
	if err != nil {
		s.t.Fatal(err)
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	got := map[string]event.Event{}
	for len(got) < len(want) {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			s.t.Fatalf("waiting for onboarded events (have %d of %d): %v; dead letters: %v", len(got), len(want), err, s.deadLetters())
		}
		ev, err := events.Decode(msg.Subject(), msg.Headers(), msg.Data())
		if err != nil {
			s.t.Fatalf("onboarded event does not decode: %v", err)
		}
		if id := events.OnboardingID(ev); want[id] {
			got[id] = ev
		}
	}
	return got
}

func (s *system) deadLetters() []string {
	info, err := s.js.Stream(context.Background(), worker.DLQStream)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	n := info.CachedInfo().State.Msgs
	for seq := uint64(1); seq <= info.CachedInfo().State.LastSeq && uint64(len(out)) < n; seq++ {
		m, err := info.GetMsg(context.Background(), seq)
		if err == nil {
			out = append(out, m.Header.Get(worker.HeaderReason)+": "+m.Header.Get(worker.HeaderError))
		}
	}
	return out
}

// inspect GETs a /_sim inspection call into v.
func (s *system) inspect(path string, v any) {
	s.t.Helper()
	resp, err := s.hc.Get(s.sim.URL() + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
}

// publishJoined publishes j as a structured joined event with id.
func (s *system) publishJoined(id string, j events.Joined) {
	s.t.Helper()
	ev, err := events.NewJoined(id, "hr/test", j, time.Now())
	if err != nil {
		s.t.Fatal(err)
	}
	header, body, err := events.Encode(ev)
	if err != nil {
		s.t.Fatal(err)
	}
	s.publish(nats.Header(header), body)
}

// awaitDeadLetter waits for the next dead letter of step.
func (s *system) awaitDeadLetter(step string) *jetstream.RawStreamMsg {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := s.js.OrderedConsumer(ctx, worker.DLQStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{worker.DLQPrefix + step}})
	if err != nil {
		s.t.Fatal(err)
	}
	m, err := c.Next(jetstream.FetchContext(ctx))
	if err != nil {
		s.t.Fatalf("no dead letter from %s: %v", step, err)
	}
	meta, err := m.Metadata()
	if err != nil {
		s.t.Fatal(err)
	}
	stream, err := s.js.Stream(ctx, worker.DLQStream)
	if err != nil {
		s.t.Fatal(err)
	}
	raw, err := stream.GetMsg(ctx, meta.Sequence.Stream)
	if err != nil {
		s.t.Fatal(err)
	}
	return raw
}

// onboardedData decodes an onboarded event's data.
func onboardedData(t *testing.T, ev event.Event) events.Onboarded {
	t.Helper()
	var d events.Onboarded
	if err := ev.DataAs(&d); err != nil {
		t.Fatal(err)
	}
	return d
}

// count returns how many messages stream holds on subject.
func (s *system) count(stream, subject string) uint64 {
	s.t.Helper()
	st, err := s.js.Stream(context.Background(), stream)
	if err != nil {
		s.t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		s.t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// settle waits until every step's consumer has nothing pending or unacked.
func (s *system) settle() {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for _, name := range app.StepNames {
		for {
			c, err := s.js.Consumer(context.Background(), worker.Stream, name)
			if err == nil {
				info, err := c.Info(context.Background())
				if err == nil && info.NumAckPending == 0 && info.NumPending == 0 {
					break
				}
			}
			if time.Now().After(deadline) {
				s.t.Fatalf("consumer %s did not settle", name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// calls returns how often the emulator answered route with status.
func (s *system) calls(route string, status int) int {
	return s.sim.Stats().Calls[route][strconv.Itoa(status)]
}
