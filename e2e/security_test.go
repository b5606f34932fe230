package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/functions/invite"
	"github.com/guestflow/guestflow/functions/license"
	"github.com/guestflow/guestflow/functions/notify"
	"github.com/guestflow/guestflow/functions/role"
	"github.com/guestflow/guestflow/internal/app"
	"github.com/guestflow/guestflow/internal/broker/brokertest"
	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/graphsim"
	"github.com/guestflow/guestflow/internal/httpclient"
	"github.com/guestflow/guestflow/internal/memo"
	"github.com/guestflow/guestflow/internal/provision"
	"github.com/guestflow/guestflow/internal/throttle"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// The README's "NATS permissions" section is the specification these tests
// hold the workers to: they read its tables and grant each step's NATS user
// exactly what they say, nothing more.

// stepSubjects are what <in> and <out> stand for in the README's table.
var stepSubjects = map[string][2]string{
	invite.Name:  {events.SubjectJoined, events.SubjectInvited},
	license.Name: {events.SubjectInvited, events.SubjectLicensed},
	role.Name:    {events.SubjectLicensed, events.SubjectRoleAssigned},
	notify.Name:  {events.SubjectRoleAssigned, events.SubjectOnboarded},
}

// grant is one line of the README's permission table.
type grant struct {
	subscribe bool
	subject   string // with <step>, <in>, <out>
	steps     []string
}

// forStep is the grant's subject for step, with its inbox prefix in place
// of _INBOX.
func (g grant) forStep(step, inbox string) string {
	s := strings.NewReplacer("<step>", step, "<in>", stepSubjects[step][0], "<out>", stepSubjects[step][1]).Replace(g.subject)
	if rest, ok := strings.CutPrefix(s, "_INBOX."); ok {
		s = inbox + "." + rest
	}
	return s
}

// readmeSection returns the lines of the README section headed title.
func readmeSection(t *testing.T, title string) []string {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in := false
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "#") {
			in = strings.TrimLeft(l, "# ") == title
			continue
		}
		if in {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		t.Fatalf("the README has no section %q", title)
	}
	return out
}

var tableCode = regexp.MustCompile("^(publish|subscribe) `([^`]+)`$")

// readGrants reads the step permission table, and checks the table of
// what <in> and <out> stand for against the code.
func readGrants(t *testing.T) []grant {
	t.Helper()
	var grants []grant
	header := "| permission | invite | license | role | notify | for |"
	steps := []string{invite.Name, license.Name, role.Name, notify.Name}
	if !slices.Equal(steps, app.StepNames) {
		t.Fatalf("the table's columns are %v, the steps %v", steps, app.StepNames)
	}
	seenSubjects := map[string]bool{}
	inTable := false
	for _, l := range readmeSection(t, "NATS permissions") {
		cells := tableCells(l)
		if len(cells) == 3 && stepSubjects[cells[0]] != [2]string{} {
			if want := stepSubjects[cells[0]]; cells[1] != "`"+want[0]+"`" || cells[2] != "`"+want[1]+"`" {
				t.Errorf("README: the %s step consumes %s and publishes %s, not %s and %s", cells[0], want[0], want[1], cells[1], cells[2])
			}
			seenSubjects[cells[0]] = true
		}
		if l == header {
			inTable = true
			continue
		}
		if !inTable || strings.HasPrefix(l, "|---") {
			continue
		}
		if !strings.HasPrefix(l, "|") {
			break
		}
		if len(cells) != 6 {
			t.Fatalf("README: a permission row has %d cells, not 6: %s", len(cells), l)
		}
		m := tableCode.FindStringSubmatch(cells[0])
		if m == nil {
			t.Fatalf("README: %q is not publish `subject` or subscribe `subject`", cells[0])
		}
		g := grant{subscribe: m[1] == "subscribe", subject: m[2]}
		for i, s := range steps {
			switch cells[1+i] {
			case "✓":
				g.steps = append(g.steps, s)
			case "":
			default:
				t.Fatalf("README: %q in the %s column of %s; want ✓ or nothing", cells[1+i], s, g.subject)
			}
		}
		grants = append(grants, g)
	}
	if len(seenSubjects) != len(stepSubjects) {
		t.Errorf("README: the table of <in> and <out> has %d of the %d steps", len(seenSubjects), len(stepSubjects))
	}
	if len(grants) < 10 {
		t.Fatalf("README: the permission table has %d rows; it was not found, or has lost most of them", len(grants))
	}
	return grants
}

// tableCells are the trimmed cells of a Markdown table row (none for any
// other line).
func tableCells(l string) []string {
	l = strings.TrimSpace(l)
	if !strings.HasPrefix(l, "|") || !strings.HasSuffix(l, "|") || len(l) < 2 {
		return nil
	}
	cells := strings.Split(l[1:len(l)-1], "|")
	for i := range cells {
		cells[i] = strings.TrimSpace(cells[i])
	}
	return cells
}

// permissions are step's grants, as nats-server takes them, without the
// one subject drop (when not empty).
func permissions(grants []grant, step, inbox, drop string) *server.Permissions {
	p := &server.Permissions{Publish: &server.SubjectPermission{}, Subscribe: &server.SubjectPermission{}}
	for _, g := range grants {
		if !slices.Contains(g.steps, step) {
			continue
		}
		s := g.forStep(step, inbox)
		if s == drop {
			continue
		}
		if g.subscribe {
			p.Subscribe.Allow = append(p.Subscribe.Allow, s)
		} else {
			p.Publish.Allow = append(p.Publish.Allow, s)
		}
	}
	// nats-server reads an empty allow-list as no restriction at all.
	for _, sp := range []*server.SubjectPermission{p.Publish, p.Subscribe} {
		if len(sp.Allow) == 0 {
			sp.Deny = []string{">"}
		}
	}
	return p
}

// secureBroker is a NATS server that speaks only TLS, verifies client
// certificates, and knows its users by nkey. Its trace of every client
// operation is kept, to see which permissions were used.
type secureBroker struct {
	t     *testing.T
	ns    *server.Server
	certs brokertest.Certs
	seeds map[string]string // user → nkey seed file
	trace *opTrace
}

// newSecureBroker starts the server with a user for each entry of perms
// (nil permissions allow everything).
func newSecureBroker(t *testing.T, perms map[string]*server.Permissions) *secureBroker {
	t.Helper()
	b := &secureBroker{t: t, certs: brokertest.NewCerts(t, "nats.guestflow.test"), seeds: map[string]string{}, trace: &opTrace{}}
	var users []*server.NkeyUser
	for name, p := range perms {
		seed, public := brokertest.NewUserNKey(t)
		b.seeds[name] = seed
		users = append(users, &server.NkeyUser{Nkey: public, Permissions: p})
	}
	b.ns = brokertest.Start(t, func(o *server.Options) {
		o.TLS, o.TLSVerify, o.TLSConfig, o.TLSTimeout = true, true, b.certs.ServerTLS(), 5
		o.Nkeys = users
		o.NoLog, o.Trace = false, true
	})
	b.ns.SetLoggerV2(b.trace, false, true, false)
	return b
}

// nats is the configuration section of user: a nats:// URL that TLS turns
// into a TLS connection, the server named as its certificate has it (it
// has no IP address), a client certificate and the user's nkey seed.
func (b *secureBroker) nats(user string) config.NATS {
	return config.NATS{
		URL:      "nats://" + b.ns.Addr().String(),
		NKeyFile: b.seeds[user],
		TLS: config.NATSTLS{
			CAFile: b.certs.CAFile, CertFile: b.certs.ClientCertFile, KeyFile: b.certs.ClientKeyFile,
			ServerName: "nats.guestflow.test",
		},
		InboxPrefix: inboxOf(user),
	}
}

// connect connects as user, with the client name the trace knows it by.
func (b *secureBroker) connect(user string) (*nats.Conn, jetstream.JetStream) {
	b.t.Helper()
	nc, js, err := app.Connect(b.nats(user), "e2e-"+user)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(nc.Close)
	return nc, js
}

// inboxOf is the inbox prefix user's replies come back on.
func inboxOf(user string) string { return "_INBOX_guestflow_" + user }

// opTrace keeps the subjects each client published to and subscribed to,
// from the server's trace.
type opTrace struct {
	mu  sync.Mutex
	ops map[string]map[string]bool // client name → "PUB subject" / "SUB subject"
}

var traceOp = regexp.MustCompile(`:go:e2e-([\w-]+)" - .*<<- \[(PUB|HPUB|SUB) (\S+)`)

func (o *opTrace) Tracef(format string, v ...any) {
	m := traceOp.FindStringSubmatch(fmt.Sprintf(format, v...))
	if m == nil {
		return
	}
	op := "PUB"
	if m[2] == "SUB" {
		op = "SUB"
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ops == nil {
		o.ops = map[string]map[string]bool{}
	}
	if o.ops[m[1]] == nil {
		o.ops[m[1]] = map[string]bool{}
	}
	o.ops[m[1]][op+" "+m[3]] = true
}
func (o *opTrace) Noticef(string, ...any) {}
func (o *opTrace) Warnf(string, ...any)   {}
func (o *opTrace) Fatalf(string, ...any)  {}
func (o *opTrace) Errorf(string, ...any)  {}
func (o *opTrace) Debugf(string, ...any)  {}

// used reports whether client published to (or subscribed to) a subject
// that pattern matches.
func (o *opTrace) used(client, pattern string, subscribe bool) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	op := "PUB "
	if subscribe {
		op = "SUB "
	}
	for k := range o.ops[client] {
		if s, ok := strings.CutPrefix(k, op); ok && subjectMatches(pattern, s) {
			return true
		}
	}
	return false
}

// subjectMatches reports whether a NATS subject pattern (with * and >)
// matches subject.
func subjectMatches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range p {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || tok != "*" && tok != s[i] {
			return false
		}
	}
	return len(p) == len(s)
}

// provisioner may create and update guestflow's streams and buckets, and
// look them up, and nothing else: what `guestflow provision` needs, as the
// README's table of other users says.
func provisioner() *server.Permissions {
	p := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{"$JS.API.INFO"}},
		Subscribe: &server.SubjectPermission{Allow: []string{inboxOf("provision") + ".>"}},
	}
	for _, s := range []string{"GUESTFLOW", "GUESTFLOW_DLQ", "KV_GUESTFLOW_MEMO", "KV_GUESTFLOW_LEASES", "KV_GUESTFLOW_INDEX", "KV_GUESTFLOW_THROTTLE"} {
		for _, op := range []string{"INFO", "CREATE", "UPDATE"} {
			p.Publish.Allow = append(p.Publish.Allow, "$JS.API.STREAM."+op+"."+s)
		}
	}
	return p
}

// publisher may publish joined events and nothing else, as an HR system.
func publisher() *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{events.SubjectJoined}},
		Subscribe: &server.SubjectPermission{Allow: []string{inboxOf("hr") + ".>"}},
	}
}

// TestLeastPrivilegeWorkersOnboardOverTLSWithNKeys runs each step as its own
// nkey user, over TLS with a client certificate, with exactly the README's
// permissions, after `provision` created the streams and buckets as a user
// that may do only that, and an HR user that may only publish joined
// events. Three guests are onboarded through retries and Dataverse's 429s,
// and every step dead-letters an input; no permission is refused, and
// every line of the README's table is used by each step it is granted to.
func TestLeastPrivilegeWorkersOnboardOverTLSWithNKeys(t *testing.T) {
	grants := readGrants(t)
	perms := map[string]*server.Permissions{"provision": provisioner(), "hr": publisher(), "observer": nil}
	for _, step := range app.StepNames {
		perms[step] = permissions(grants, step, inboxOf(step), "")
	}
	b := newSecureBroker(t, perms)

	conns := map[string]*nats.Conn{}
	pnc, pjs := b.connect("provision")
	conns["provision"] = pnc
	if _, err := app.Provision(t.Context(), pjs, worker.StreamOptions{}); err != nil {
		t.Fatalf("provision: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// Each instance allows six Dataverse calls per three seconds, one at a
	// time: a role attempt makes up to five, so the three onboardings'
	// attempts meet 429s, and the role step writes and reads the
	// instance's pause. A resource-unit budget the onboardings fill past
	// 80 % makes every step pace its Graph calls in the shared bucket
	// (resource units are paced only while they fill), role's reads too.
	sim, cfg := securityEmulator(t, graphsim.Options{
		SyncDelay:      100 * time.Millisecond,
		DataverseLimit: graphsim.Limit{N: 6, Per: 3 * time.Second}, DataverseConcurrency: 1,
		ResourceUnitLimit: graphsim.Limit{N: 30, Per: 10 * time.Second},
	})
	var wg sync.WaitGroup
	for _, step := range app.StepNames {
		nc, js := b.connect(step)
		conns[step] = nc
		steps, err := app.BuildSteps(ctx, cfg, app.Credentials{ClientID: graphsim.DefaultClientID, ClientSecret: graphsim.DefaultClientSecret},
			js, []string{step}, app.StepOptions{SyncDeadline: time.Minute, Throttle: &throttle.Options{WriteRate: 500, InviteRate: 500}})
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		// Every step fails its first attempt at each onboarding, so that
		// each retries, as in production, and reads its input's lease.
		steps[0].Handler = failFirstAttempt(steps[0].Handler)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := worker.Run(ctx, js, steps[0], securityWorkerOptions()); err != nil {
				t.Errorf("worker %s: %v", step, err)
			}
		}()
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			wg.Wait()
		}
	}
	t.Cleanup(stop)

	onc, ojs := b.connect("observer")
	s := &system{t: t, sim: sim, cfg: cfg, nc: onc, js: ojs, hc: httpclient.WithPool(sim.CertPool(), 10*time.Second)}
	hnc, hjs := b.connect("hr")
	conns["hr"] = hnc
	publishAs := func(id string, j events.Joined) {
		t.Helper()
		ev, err := events.NewJoined(id, "hr/test", j, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		header, body, err := events.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := hjs.PublishMsg(t.Context(), &nats.Msg{Subject: events.SubjectJoined, Header: nats.Header(header), Data: body}); err != nil {
			t.Fatalf("the HR user publishes: %v", err)
		}
	}
	publishAs("sec-1", sales("ana@fabrikam.com"))
	publishAs("sec-2", sales("kenji@adatum.example"))
	publishAs("sec-3", sales("liam@contoso.example"))
	admin := sales("eve@attacker.example")
	admin.Roles = []string{"System Administrator"}
	publishAs("sec-admin", admin)
	// Every step dead-letters: invite a role the instance does not allow,
	// the others an input that is no event, as anyone allowed to publish
	// on their subjects could send.
	for _, step := range []string{license.Name, role.Name, notify.Name} {
		if err := onc.Publish(stepSubjects[step][0], []byte("not an event")); err != nil {
			t.Fatal(err)
		}
	}
	got := s.await("sec-1", "sec-2", "sec-3")
	// A licensed event for a real guest in an onboarding the steps have no
	// record of, as anyone allowed to publish on the subject could send:
	// the role step checks the user in Graph, a read paced through the
	// shared budget (the role step's throttle grant).
	d := onboardedData(t, got["sec-1"])
	s.publishAs(events.TypeLicensed, "sec-relicensed", "sec-1-again", d.Email, d.Licensed)
	s.await("sec-1-again")
	if r := s.awaitDeadLetter(invite.Name).Header.Get(worker.HeaderReason); r != failure.RoleNotAllowed {
		t.Errorf("the invite step's dead letter's reason is %s, want %s", r, failure.RoleNotAllowed)
	}
	for _, step := range []string{license.Name, role.Name, notify.Name} {
		s.awaitDeadLetter(step)
	}
	s.settle()
	stop()

	// An operator changes a stream and a bucket by hand; provision puts
	// them back, with the provisioning user's update permission.
	dlqCfg := worker.StreamConfigs(worker.StreamOptions{})[1]
	dlqCfg.MaxAge = time.Hour
	if _, err := ojs.UpdateStream(t.Context(), dlqCfg); err != nil {
		t.Fatal(err)
	}
	memoCfg := memo.BucketConfig(time.Hour)
	if _, err := ojs.UpdateKeyValue(t.Context(), memoCfg); err != nil {
		t.Fatal(err)
	}
	done, err := app.Provision(t.Context(), pjs, worker.StreamOptions{})
	if err != nil {
		t.Fatalf("provision again: %v", err)
	}
	for _, p := range done {
		want := provision.Unchanged
		if p.Name == worker.DLQStream || p.Name == memo.Bucket {
			want = provision.Updated
		}
		if p.Action != want {
			t.Errorf("provision again: %s %s %s, want %s", p.Kind, p.Name, p.Action, want)
		}
	}

	if n := s.calls("POST /v1.0/invitations", 201); n != 3 {
		t.Errorf("%d invitations, want 3", n)
	}
	dataverse429 := 0
	for route, byStatus := range sim.Stats().Calls {
		if strings.Contains(route, "/api/data/") {
			dataverse429 += byStatus["429"]
		}
	}
	if dataverse429 == 0 {
		t.Errorf("Dataverse never answered 429, so no pause was shared: %v", sim.Stats().Calls)
	}
	for step, nc := range conns {
		if err := nc.LastError(); err != nil {
			t.Errorf("the %s user's connection reported %v", step, err)
		}
	}
	// Every line of the table is used by every step it is granted to: none
	// is there for nothing.
	for _, g := range grants {
		for _, step := range g.steps {
			if s := g.forStep(step, inboxOf(step)); !b.trace.used(step, s, g.subscribe) {
				t.Errorf("README: the %s step never used %q", step, s)
			}
		}
	}
}

// TestAWorkerWithoutAPermissionSaysWhichAtStart drops one line of the
// README's table from a step's user at a time: each worker fails at start,
// with an error naming the refused subject, instead of timing out
// mysteriously or running without it.
func TestAWorkerWithoutAPermissionSaysWhichAtStart(t *testing.T) {
	grants := readGrants(t)
	drops := []struct{ step, subject, want string }{
		// Refused while building the step (the memo bucket's lookup).
		{role.Name, "$JS.API.STREAM.INFO.KV_GUESTFLOW_MEMO", `Permissions Violation for Publish to "$JS.API.STREAM.INFO.KV_GUESTFLOW_MEMO"`},
		// Refused by the runtime (its consumer's lookup).
		{license.Name, "$JS.API.CONSUMER.INFO.GUESTFLOW.license", `Permissions Violation for Publish to "$JS.API.CONSUMER.INFO.GUESTFLOW.license"`},
		// The replies: every request times out.
		{notify.Name, inboxOf(notify.Name) + ".>", `Permissions Violation for Subscription to "` + inboxOf(notify.Name) + `.`},
	}
	perms := map[string]*server.Permissions{"provision": provisioner()}
	for _, d := range drops {
		p, all := permissions(grants, d.step, inboxOf(d.step), d.subject), permissions(grants, d.step, inboxOf(d.step), "")
		if len(p.Publish.Allow)+len(p.Subscribe.Allow) != len(all.Publish.Allow)+len(all.Subscribe.Allow)-1 {
			t.Fatalf("%s: %q is not one of its permissions", d.step, d.subject)
		}
		perms[d.step] = p
	}
	b := newSecureBroker(t, perms)
	_, pjs := b.connect("provision")
	if _, err := app.Provision(t.Context(), pjs, worker.StreamOptions{}); err != nil {
		t.Fatalf("provision: %v", err)
	}
	_, cfg := securityEmulator(t, graphsim.Options{})
	var wg sync.WaitGroup
	for _, d := range drops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, js := b.connect(d.step)
			// Without a deadline, as in production, the JetStream calls
			// wait for their own (five seconds); this one only stops a
			// worker that started after all.
			ctx, cancel := context.WithCancel(context.Background())
			defer time.AfterFunc(20*time.Second, cancel).Stop()
			defer cancel()
			err := startWorker(ctx, cfg, js, d.step)
			if ctx.Err() != nil {
				t.Errorf("%s without %s: no error at start", d.step, d.subject)
				return
			}
			if err == nil || !strings.Contains(err.Error(), d.want) {
				t.Errorf("%s without %s: want an error with %s, got %v", d.step, d.subject, d.want, err)
				return
			}
			t.Logf("%s without %s: %v", d.step, d.subject, err)
		}()
	}
	wg.Wait()
}

// failFirstAttempt fails the first attempt at each input, retryably.
func failFirstAttempt(h worker.Handler) worker.Handler {
	var mu sync.Mutex
	seen := map[string]bool{}
	return worker.HandlerFunc(func(ctx context.Context, in event.Event) (*event.Event, error) {
		mu.Lock()
		first := !seen[in.ID()]
		seen[in.ID()] = true
		mu.Unlock()
		if first {
			return nil, errors.New("the first attempt fails, for the test")
		}
		return h.Handle(ctx, in)
	})
}

// startWorker builds step and runs its worker until it fails or ctx ends.
func startWorker(ctx context.Context, cfg config.Config, js jetstream.JetStream, step string) error {
	steps, err := app.BuildSteps(ctx, cfg, app.Credentials{ClientID: graphsim.DefaultClientID, ClientSecret: graphsim.DefaultClientSecret},
		js, []string{step}, app.StepOptions{SyncDeadline: time.Minute, Throttle: &throttle.Options{WriteRate: 500, InviteRate: 500}})
	if err != nil {
		return fmt.Errorf("building %s: %w", step, err)
	}
	err = worker.Run(ctx, js, steps[0], securityWorkerOptions())
	if err == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func securityWorkerOptions() worker.Options {
	return worker.Options{
		Backoff: worker.Backoff(200*time.Millisecond, 2*time.Second),
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// securityEmulator starts the emulator and returns its configuration.
func securityEmulator(t *testing.T, o graphsim.Options) (*graphsim.Sim, config.Config) {
	t.Helper()
	sim, err := graphsim.New(o)
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
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return sim, cfg
}
