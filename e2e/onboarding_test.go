// Package e2e runs guestflow end to end: an embedded NATS server, the
// emulator over HTTPS, and the four workers built exactly as `guestflow
// worker` builds them, on the real azidentity, msgraph-sdk-go and Dataverse
// client code paths.
package e2e

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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

func start(t *testing.T, opts graphsim.Options) *system {
	t.Helper()
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
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the emulator's configuration is invalid: %v", err)
	}
	nc, js, err := app.Connect(cfg.NATS.URL, "", "e2e")
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
	steps, err := app.BuildSteps(ctx, cfg, app.Credentials{ClientID: graphsim.DefaultClientID, ClientSecret: graphsim.DefaultClientSecret},
		js, app.StepNames, app.StepOptions{SyncDeadline: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	running := make(chan error, len(steps))
	for _, s := range steps {
		go func() {
			running <- worker.Run(ctx, js, s, worker.Options{
				Backoff: worker.Backoff(200*time.Millisecond, 2*time.Second),
				Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
			})
		}()
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
	got := map[string]event.Event{}
	for len(got) < len(ids) {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			s.t.Fatalf("waiting for onboarded events (have %d of %d): %v; dead letters: %v", len(got), len(ids), err, s.deadLetters())
		}
		ev, err := events.Decode(msg.Subject(), msg.Headers(), msg.Data())
		if err != nil {
			s.t.Fatalf("onboarded event does not decode: %v", err)
		}
		got[events.OnboardingID(ev)] = ev
	}
	for _, id := range ids {
		if _, ok := got[id]; !ok {
			s.t.Fatalf("no onboarded event for %s (got %v)", id, got)
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

// Inspection API shapes (contract §7).
type (
	simUser struct {
		ID                string   `json:"id"`
		Mail              string   `json:"mail"`
		UserPrincipalName string   `json:"userPrincipalName"`
		UserType          string   `json:"userType"`
		GivenName         string   `json:"givenName"`
		Surname           string   `json:"surname"`
		DisplayName       string   `json:"displayName"`
		UsageLocation     string   `json:"usageLocation"`
		AssignedLicenses  []string `json:"assignedLicenses"`
		Groups            []string `json:"groups"`
	}
	simInstance struct {
		Name            string  `json:"name"`
		URL             string  `json:"url"`
		SecurityGroupID *string `json:"securityGroupId"`
	}
	simSystemUser struct {
		SystemUserID  string   `json:"systemuserid"`
		ObjectID      string   `json:"azureactivedirectoryobjectid"`
		InternalEmail string   `json:"internalemailaddress"`
		Roles         []string `json:"roles"`
	}
	simMail struct {
		From        string   `json:"from"`
		To          []string `json:"to"`
		Subject     string   `json:"subject"`
		ContentType string   `json:"contentType"`
		Body        string   `json:"body"`
	}
)

func joinedBody(t *testing.T, j events.Joined, id string, ext map[string]string) []byte {
	t.Helper()
	ev, err := events.NewJoined(id, "hr/test", j, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range ext {
		ev.SetExtension(k, v)
	}
	_, body, err := events.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// TestOnboardsEveryInstance publishes one user per seeded instance — in
// structured mode, in binary mode, and with a trace context — and checks
// every outcome Microsoft's procedure asks for in the emulator's state.
func TestOnboardsEveryInstance(t *testing.T) {
	s := start(t, graphsim.Options{SyncDelay: 300 * time.Millisecond})

	const trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	users := map[string]events.Joined{
		"sales": {Email: "Ana.Silva@Fabrikam.com", GivenName: " Ana ", Surname: "Silva", UsageLocation: "pt",
			Instance: "sales", Message: "Welcome <b>team</b> & co"},
		"service": {Email: "liam.o'brien@contoso.example", GivenName: "Liam", Surname: "O'Brien", UsageLocation: "IE",
			Instance: "service"},
		"legacy": {Email: "kenji.sato@adatum.example", GivenName: "Kenji", Surname: "Sato", UsageLocation: "JP",
			Instance: "legacy"},
	}
	ids := map[string]string{"sales": "hr-1001", "service": "hr-1002", "legacy": "hr-1003"}

	// sales: structured mode, no Content-Type header at all.
	s.publish(nats.Header{}, joinedBody(t, users["sales"], ids["sales"], nil))
	// service: binary mode, as an HR system without a CloudEvents SDK would send it.
	data, _ := json.Marshal(users["service"])
	s.publish(nats.Header{
		"ce-specversion": {"1.0"}, "ce-id": {ids["service"]}, "ce-source": {"hr/test"},
		"ce-type": {events.TypeJoined}, "Content-Type": {"application/json; charset=utf-8"},
	}, data)
	// legacy: structured, carrying a trace context.
	s.publish(nats.Header{"Content-Type": {"application/cloudevents+json"}},
		joinedBody(t, users["legacy"], ids["legacy"], map[string]string{events.ExtTraceparent: trace}))

	done := s.await(ids["sales"], ids["service"], ids["legacy"])

	var instances []simInstance
	s.inspect("/_sim/instances", &instances)
	groupOf := map[string]string{}
	for _, in := range instances {
		if in.SecurityGroupID != nil {
			groupOf[in.Name] = *in.SecurityGroupID
		}
	}
	if groupOf["sales"] == "" || len(groupOf) != 1 {
		t.Fatalf("seeded tenant: want exactly sales with a security group, got %v", groupOf)
	}
	var dirUsers []simUser
	s.inspect("/_sim/users", &dirUsers)
	var mails []simMail
	s.inspect("/_sim/mail", &mails)

	for name, j := range users {
		inst := s.cfg.Instances[name]
		email := strings.ToLower(j.Email)
		ev := done[ids[name]]
		var out events.Onboarded
		if err := ev.DataAs(&out); err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) {
			if ev.Source() != "guestflow/notify" || ev.Subject() != email || ev.Type() != events.TypeOnboarded {
				t.Errorf("onboarded envelope: source %q subject %q type %q", ev.Source(), ev.Subject(), ev.Type())
			}
			if out.NotifiedAt == "" || out.SkuPartNumber != inst.License || out.UserID == "" || out.SystemUserID == "" {
				t.Errorf("onboarded data incomplete: %+v", out)
			}
			// The guest in the directory: invited, profiled, licensed, grouped.
			var u *simUser
			for i := range dirUsers {
				if strings.EqualFold(dirUsers[i].Mail, email) {
					if u != nil {
						t.Fatalf("two directory users for %s", email)
					}
					u = &dirUsers[i]
				}
			}
			if u == nil {
				t.Fatalf("no directory user for %s", email)
			}
			if u.ID != out.UserID || u.UserType != "Guest" || !strings.Contains(u.UserPrincipalName, "#EXT#") {
				t.Errorf("directory user: %+v, event user id %s", u, out.UserID)
			}
			if u.GivenName != strings.TrimSpace(j.GivenName) || u.Surname != j.Surname || u.UsageLocation != strings.ToUpper(j.UsageLocation) {
				t.Errorf("profile not written: %+v", u)
			}
			if len(u.AssignedLicenses) != 1 || u.AssignedLicenses[0] != inst.License {
				t.Errorf("licenses: %v, want [%s]", u.AssignedLicenses, inst.License)
			}
			wantGroups := 0
			if name == "sales" {
				wantGroups = 1
				if len(u.Groups) != 1 || u.Groups[0] != groupOf["sales"] || out.GroupID != groupOf["sales"] {
					t.Errorf("groups %v / event groupId %q, want %s", u.Groups, out.GroupID, groupOf["sales"])
				}
			}
			if len(u.Groups) != wantGroups {
				t.Errorf("groups %v, want %d", u.Groups, wantGroups)
			}
			// The systemuser in the environment: roles and the legacy email fix.
			var sus []simSystemUser
			s.inspect("/_sim/instances/"+name+"/systemusers", &sus)
			var su *simSystemUser
			for i := range sus {
				if sus[i].ObjectID == out.UserID {
					su = &sus[i]
				}
			}
			if su == nil {
				t.Fatalf("no systemuser for %s in %s", out.UserID, name)
			}
			if su.SystemUserID != out.SystemUserID || len(su.Roles) != len(inst.Roles) || su.Roles[0] != inst.Roles[0] {
				t.Errorf("systemuser %+v, want roles %v", su, inst.Roles)
			}
			if su.InternalEmail != email {
				t.Errorf("internalemailaddress %q, want %q", su.InternalEmail, email)
			}
			if out.EmailUpdated != (name == "legacy") {
				t.Errorf("emailUpdated %v on %s", out.EmailUpdated, name)
			}
			// Exactly one mail, with the links and the unsupported features.
			var mine []simMail
			for _, m := range mails {
				if len(m.To) == 1 && m.To[0] == email {
					mine = append(mine, m)
				}
			}
			if len(mine) != 1 {
				t.Fatalf("%d mails to %s, want 1", len(mine), email)
			}
			m := mine[0]
			if m.From != s.cfg.Notify.Sender || m.ContentType != "html" {
				t.Errorf("mail from %q type %q", m.From, m.ContentType)
			}
			for _, want := range []string{inst.URL, htmlEscaped(out.InviteRedeemURL), "Unified Service Desk", "App for Outlook",
				"server-side email synchronization", "Office 365 Groups"} {
				if want == "" || !strings.Contains(m.Body, want) {
					t.Errorf("mail body lacks %q:\n%s", want, m.Body)
				}
			}
		})
	}
	if body := mailTo(mails, "ana.silva@fabrikam.com"); !strings.Contains(body, "Welcome &lt;b&gt;team&lt;/b&gt; &amp; co") {
		t.Errorf("personal message not escaped in:\n%s", body)
	}
	if tp, _ := done[ids["legacy"]].Extensions()[events.ExtTraceparent].(string); !strings.HasPrefix(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || tp == trace {
		t.Errorf("traceparent %q is not a child of %q", tp, trace)
	}
	if dl := s.deadLetters(); len(dl) != 0 {
		t.Errorf("dead letters: %v", dl)
	}
}

func mailTo(mails []simMail, to string) string {
	for _, m := range mails {
		if len(m.To) == 1 && m.To[0] == to {
			return m.Body
		}
	}
	return ""
}

// htmlEscaped is how html/template writes a URL inside an attribute or text.
func htmlEscaped(s string) string { return strings.ReplaceAll(s, "&", "&amp;") }
