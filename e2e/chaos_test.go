//go:build linux

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// TestChaos onboards 300 guests through the real binaries while things
// break: a standalone nats-server, the emulator (`guestflow graphsim`) with
// 10 % of its API calls failing (429, 500, 503, 504), and three
// `guestflow worker all` processes.
//
// Design:
//   - Three `worker all` processes rather than one process per step: every
//     step runs in every process, so each SIGKILL interrupts all four steps
//     at once (invitations, license assignments, role associations and mails
//     in flight) while two other processes keep every step served.
//   - The joined events are published at a steady rate (100 s for all), so
//     joins keep arriving and invitations keep being made while later steps
//     run: every kill, the broker's included, lands in the middle of every
//     step and of the publishing (which retries each event until its
//     PubAck, under the same Nats-Msg-Id).
//   - Progress is the number of messages on guestflow.user.onboarded. At a
//     third of the onboardings worker 0 is SIGKILLed and restarted, at half
//     the broker is SIGKILLed and restarted on the same port and store
//     directory (the workers must reconnect by themselves; the monitoring
//     endpoint must show all three again), at two thirds worker 1.
//   - --ack-wait 3s makes the broker redeliver what a killed worker held
//     within the test; --max-failures 30 keeps 10 % faults on each of the
//     several calls an attempt makes from exhausting the failure budget,
//     and --backoff-max 4s keeps the unlucky inputs' retries within the
//     test's time (the default cap, two minutes, is for real outages).
//   - Afterwards, once every consumer has settled, the emulator's counters
//     must show one invitation, one license assignment and one role
//     association per user, and at most 1 + (worker kills) mails per
//     address; no dead letter; faults really injected.
//
// It runs in `go test ./...` (about two and a half minutes on two cores,
// bounded by a four-minute budget); -short skips it.
//
// On failure it prints the tail of every process's log and each worker's
// most frequent warnings and retries, and, when onboardings are missing,
// what the workers last logged about them. GUESTFLOW_CHAOS_DIR=DIR keeps
// the logs and the broker's store in a new folder under DIR.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test: several processes for a few minutes")
	}
	const (
		users       = 300
		workerProcs = 3
		ackWait     = 3 * time.Second
		maxFailures = 30
		backoffMax  = 4 * time.Second
		publishRate = 3 // joined events per second: 100 s for all, so every kill lands while joins still arrive
		budget      = 4 * time.Minute
	)
	began := time.Now()
	since := func() string { return time.Since(began).Round(100 * time.Millisecond).String() }
	tmp := t.TempDir()
	if dir := os.Getenv("GUESTFLOW_CHAOS_DIR"); dir != "" {
		// Keep the logs (and the broker's store) for a post-mortem.
		tmp = filepath.Join(dir, time.Now().Format("20060102-150405"))
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Logf("logs kept in %s", tmp)
	}

	// Binaries, built once on the ordinary build cache.
	root := chaosModuleRoot(t)
	gf := chaosBuild(t, root, tmp, "guestflow", "./cmd/guestflow")
	ns := chaosBuild(t, root, tmp, "nats-server", "github.com/nats-io/nats-server/v2")
	t.Logf("%8s  built guestflow and nats-server in %s", since(), tmp)

	var procs, workers []*chaosProc
	// Registered first, so it runs last: after every process is killed.
	t.Cleanup(func() {
		for _, p := range procs {
			for _, pr := range p.problems() {
				t.Errorf("%s: %s", p.name, pr)
			}
		}
		if t.Failed() {
			for _, p := range procs {
				t.Logf("---- last lines of %s (%s) ----\n%s", p.name, p.log, p.tail(25))
			}
			for _, p := range workers {
				t.Logf("---- most frequent warnings and retries of %s ----\n%s", p.name, strings.Join(p.summary(12), "\n"))
			}
		}
	})

	// The broker: file storage that survives its restart.
	natsPort, monPort := chaosFreePort(t), chaosFreePort(t)
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	broker := newChaosProc(t, tmp, "nats-server", ns, nil,
		"-js", "-sd", filepath.Join(tmp, "js"), "-a", "127.0.0.1", "-p", strconv.Itoa(natsPort),
		"-m", strconv.Itoa(monPort))
	procs = append(procs, broker)
	startBroker := func() {
		t.Helper()
		broker.start()
		chaosWait(t, 20*time.Second, "nats-server accepting connections", func() bool {
			return chaosAccepts(natsPort) && chaosAccepts(monPort)
		})
	}
	startBroker()

	// The emulator, with its configuration and CA.
	simPort := chaosFreePort(t)
	cfgPath := filepath.Join(tmp, "guestflow.yaml")
	sim := newChaosProc(t, tmp, "graphsim", gf, nil, "graphsim",
		"--addr", fmt.Sprintf("127.0.0.1:%d", simPort), "--print-config", cfgPath,
		"--fault-rate", "0.1", "--sync-delay", "200ms")
	procs = append(procs, sim)
	sim.start()
	chaosWait(t, 20*time.Second, "graphsim writing its configuration", func() bool {
		return sim.logContains("configuration written to") && chaosAccepts(simPort)
	})
	api := chaosSimClient(t, fmt.Sprintf("https://127.0.0.1:%d", simPort), filepath.Join(tmp, "graphsim-ca.pem"))

	// The workers.
	env := chaosEnv("AZURE_CLIENT_ID=guestflow-dev", "AZURE_CLIENT_SECRET=guestflow-dev-secret")
	workers = make([]*chaosProc, workerProcs)
	for i := range workers {
		workers[i] = newChaosProc(t, tmp, fmt.Sprintf("worker-%d", i), gf, env,
			"worker", "all", "--config", cfgPath, "--nats", natsURL,
			"--ack-wait", ackWait.String(), "--max-failures", strconv.Itoa(maxFailures),
			"--backoff-max", backoffMax.String(), "-v")
		procs = append(procs, workers[i])
		workers[i].start()
	}
	workersExited := func() string {
		var out []string
		for _, w := range workers {
			out = append(out, w.problems()...)
		}
		return strings.Join(out, "; ")
	}

	// The test's own client, reconnecting like the workers do.
	nc, err := nats.Connect(natsURL, nats.Name("chaos-test"), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ready := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, step := range []string{"invite", "license", "role", "notify"} {
			if _, err := js.Consumer(ctx, worker.Stream, step); err != nil {
				return false
			}
		}
		return true
	}
	chaosWait(t, 60*time.Second, "the workers creating the streams and consumers", func() bool {
		if p := workersExited(); p != "" {
			t.Fatalf("a worker ended: %s", p)
		}
		return ready() && chaosWorkerConns(monPort) == workerProcs
	})
	t.Logf("%8s  broker on %s, graphsim on 127.0.0.1:%d, %d worker processes (pids %d %d %d) ready",
		since(), natsURL, simPort, workerProcs, workers[0].pid(), workers[1].pid(), workers[2].pid())

	// Progress: messages on guestflow.user.onboarded, polled; the broker
	// being down only pauses it.
	var onboarded atomic.Int64
	stop := make(chan struct{})
	var bg sync.WaitGroup
	t.Cleanup(func() { close(stop); bg.Wait() })
	bg.Add(1)
	go func() {
		defer bg.Done()
		for {
			if n, err := chaosSubjectCount(js, worker.Stream, events.SubjectOnboarded); err == nil {
				onboarded.Store(int64(n))
			}
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()

	// The HR system: 300 joined events at a steady rate, each retried until
	// its PubAck (the broker is killed meanwhile); Nats-Msg-Id = event id
	// makes a retried publish count once.
	instances := []string{"sales", "service", "legacy"}
	countries := []string{"PT", "IE", "DE", "US", "GB", "FR", "JP", "BR"}
	type person struct{ id, email, instance string }
	people := make([]person, users)
	for i := range people {
		people[i] = person{
			id:       fmt.Sprintf("chaos-%03d", i),
			email:    fmt.Sprintf("guest.%03d@partner%d.example", i, i%7),
			instance: instances[i%len(instances)],
		}
	}
	var published atomic.Int64
	publishErr := make(chan error, 1)
	bg.Add(1)
	go func() {
		defer bg.Done()
		tick := time.NewTicker(time.Second / publishRate)
		defer tick.Stop()
		for i, p := range people {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ev, err := events.NewJoined(p.id, "hr/chaos", events.Joined{
				Email: p.email, GivenName: "Guest", Surname: fmt.Sprintf("Number %03d", i),
				UsageLocation: countries[i%len(countries)], Instance: p.instance,
				Message: "Welcome aboard (chaos run).",
			}, time.Now())
			if err != nil {
				publishErr <- err
				return
			}
			header, body, err := events.Encode(ev)
			if err != nil {
				publishErr <- err
				return
			}
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err = js.PublishMsg(ctx, &nats.Msg{Subject: events.SubjectJoined, Header: nats.Header(header), Data: body},
					jetstream.WithMsgID(ev.ID()))
				cancel()
				if err == nil {
					break
				}
				if time.Since(began) > budget {
					publishErr <- fmt.Errorf("event %s not published: %v", p.id, err)
					return
				}
				select {
				case <-stop:
					return
				case <-time.After(250 * time.Millisecond):
				}
			}
			published.Add(1)
		}
		t.Logf("%8s  all %d joined events published", since(), users)
	}()

	deadline := began.Add(budget)
	// stuck describes the onboardings without an onboarded event: the last
	// things the workers logged about them.
	stuck := func() string {
		seen, err := chaosOnboardingIDs(js)
		if err != nil {
			return fmt.Sprintf("\n(cannot read the onboarded events: %v)", err)
		}
		var b strings.Builder
		missing := 0
		for _, p := range people {
			if seen[p.id] > 0 {
				continue
			}
			if missing++; missing > 10 {
				continue
			}
			fmt.Fprintf(&b, "\n  %s (%s, %s) is not onboarded; last log lines about it:", p.id, p.email, p.instance)
			for _, w := range workers {
				for _, l := range w.grep("onboarding_id="+p.id+" ", 3) {
					fmt.Fprintf(&b, "\n    %s: %s", w.name, l)
				}
			}
		}
		return fmt.Sprintf("\n%d onboardings not finished:%s\nso far: %s", missing, b.String(), api.sideEffects())
	}
	awaitProgress := func(n int64, what string) {
		t.Helper()
		for onboarded.Load() < n {
			select {
			case err := <-publishErr:
				t.Fatalf("publishing: %v", err)
			default:
			}
			if p := workersExited(); p != "" {
				t.Fatalf("a worker ended by itself: %s", p)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: only %d of %d onboarded after %s (%d published); dead letters: %v%s",
					what, onboarded.Load(), users, budget, published.Load(), chaosDeadLetters(js), stuck())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	awaitReconnected := func(what string) {
		t.Helper()
		chaosWait(t, 30*time.Second, what, func() bool {
			if p := workersExited(); p != "" {
				t.Fatalf("a worker ended by itself: %s", p)
			}
			return chaosWorkerConns(monPort) == workerProcs
		})
	}

	// The chaos, at a third, a half and two thirds of the onboardings.
	workerKills := 0
	var kills []string
	killWorker := func(i int, at int64) {
		t.Helper()
		awaitProgress(at, fmt.Sprintf("before killing worker-%d", i))
		pid := workers[i].pid()
		workers[i].kill()
		workerKills++
		n := onboarded.Load()
		kills = append(kills, fmt.Sprintf("worker-%d at %d", i, n))
		t.Logf("%8s  SIGKILLed worker-%d (pid %d) at %d onboarded, %d published", since(), i, pid, n, published.Load())
		time.Sleep(time.Second)
		workers[i].start()
		awaitReconnected(fmt.Sprintf("worker-%d connected again after its restart", i))
		t.Logf("%8s  restarted worker-%d (pid %d)", since(), i, workers[i].pid())
	}
	killWorker(0, users/3)

	awaitProgress(users/2, "before killing the broker")
	pid := broker.pid()
	broker.kill()
	atKill := onboarded.Load()
	kills = append(kills, fmt.Sprintf("broker at %d", atKill))
	t.Logf("%8s  SIGKILLed nats-server (pid %d) at %d onboarded, %d published", since(), pid, atKill, published.Load())
	time.Sleep(2 * time.Second)
	startBroker()
	t.Logf("%8s  restarted nats-server (pid %d) on the same port and store", since(), broker.pid())
	awaitReconnected("every worker reconnected to the restarted broker by itself")
	t.Logf("%8s  all %d worker processes reconnected", since(), workerProcs)

	killWorker(1, 2*users/3)

	// Every onboarding finishes: one onboarded event per onboarding id.
	var seen map[string]int
	for {
		awaitProgress(users, "waiting for every onboarding")
		var err error
		if seen, err = chaosOnboardingIDs(js); err == nil && len(seen) >= users {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d distinct onboardings finished after %s (err %v); dead letters: %v%s", len(seen), budget, err, chaosDeadLetters(js), stuck())
		}
		time.Sleep(time.Second)
	}
	total := 0
	for _, n := range seen {
		total += n
	}
	t.Logf("%8s  all %d onboarded (%d onboarded messages); chaos: %s", since(), len(seen), total, strings.Join(kills, ", "))
	for _, p := range people {
		if seen[p.id] == 0 {
			t.Errorf("onboarding %s (%s) has no onboarded event", p.id, p.email)
		}
	}
	if total != len(seen) {
		t.Logf("note: %d onboarded messages for %d onboardings: a redelivered input forked an output despite its deterministic id", total, len(seen))
	}

	// Nothing still in flight may change the counts below.
	chaosSettle(t, js, 60*time.Second)
	t.Logf("%8s  every consumer settled", since())
	if p := workersExited(); p != "" {
		t.Errorf("a worker ended by itself: %s", p)
	}
	if n := chaosWorkerConns(monPort); n != workerProcs {
		t.Errorf("%d worker connections at the end, want %d", n, workerProcs)
	}

	// What the emulator saw.
	var stats struct {
		Requests    int                       `json:"requests"`
		ByStatus    map[string]int            `json:"byStatus"`
		Invitations int                       `json:"invitations"`
		Throttled   int                       `json:"throttled"`
		Faults      int                       `json:"faults"`
		Calls       map[string]map[string]int `json:"calls"`
	}
	api.get(t, "/_sim/stats", &stats)
	calls := func(route string, status int) int { return stats.Calls[route][strconv.Itoa(status)] }
	t.Logf("emulator: %d requests, %d faults injected, by status %v", stats.Requests, stats.Faults, stats.ByStatus)
	if stats.Faults == 0 {
		t.Error("no fault was injected: --fault-rate 0.1 did not reach the emulator")
	}
	byInstance := map[string]int{}
	for _, p := range people {
		byInstance[p.instance]++
	}
	const (
		invitationsRoute = "POST /v1.0/invitations"
		licenseRoute     = "POST /v1.0/users/{id}/assignLicense"
		groupRoute       = "POST /v1.0/groups/{id}/members/$ref"
		roleRoute        = "POST /instances/{instance}/api/data/v9.2/systemusers({id})/systemuserroles_association/$ref"
		emailFixRoute    = "PATCH /instances/{instance}/api/data/v9.2/systemusers({id})"
	)
	for _, c := range []struct {
		what      string
		got, want int
		route     string
	}{
		{"invitations (201)", stats.Invitations, users, invitationsRoute},
		{"license assignments (200)", calls(licenseRoute, 200), users, licenseRoute},
		{"role associations (204)", calls(roleRoute, 204), users, roleRoute},
		{"security group adds (204, sales only)", calls(groupRoute, 204), byInstance["sales"], groupRoute},
		{"email fixes (204, legacy only)", calls(emailFixRoute, 204), byInstance["legacy"], emailFixRoute},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d, one per user (%s answered %v)", c.what, c.got, c.want, c.route, stats.Calls[c.route])
		}
	}

	// Every user exists once, as a guest, with exactly the instance's license.
	var instList []struct {
		Name            string   `json:"name"`
		SecurityGroupID *string  `json:"securityGroupId"`
		License         string   `json:"license"`
		Roles           []string `json:"roles"`
	}
	api.get(t, "/_sim/instances", &instList)
	type instInfo struct {
		group, license string
		roles          []string
	}
	inst := map[string]instInfo{}
	for _, in := range instList {
		i := instInfo{license: in.License, roles: in.Roles}
		if in.SecurityGroupID != nil {
			i.group = *in.SecurityGroupID
		}
		inst[in.Name] = i
	}
	var simUsers []struct {
		ID                     string   `json:"id"`
		Mail                   string   `json:"mail"`
		UserType               string   `json:"userType"`
		UsageLocation          string   `json:"usageLocation"`
		AssignedLicenses       []string `json:"assignedLicenses"`
		Groups                 []string `json:"groups"`
		InvitationMessagesSent int      `json:"invitationMessagesSent"`
	}
	api.get(t, "/_sim/users", &simUsers)
	byMail := map[string][]int{}
	for i, u := range simUsers {
		byMail[strings.ToLower(u.Mail)] = append(byMail[strings.ToLower(u.Mail)], i)
	}
	objectIDs := map[string]string{} // email → Entra object id
	for _, p := range people {
		idx := byMail[p.email]
		if len(idx) != 1 {
			t.Errorf("%s: %d directory users, want 1", p.email, len(idx))
			continue
		}
		u := simUsers[idx[0]]
		objectIDs[p.email] = u.ID
		want := inst[p.instance]
		if u.UserType != "Guest" {
			t.Errorf("%s: userType %q, want Guest", p.email, u.UserType)
		}
		if len(u.AssignedLicenses) != 1 || u.AssignedLicenses[0] != want.license {
			t.Errorf("%s: licenses %v, want exactly [%s]", p.email, u.AssignedLicenses, want.license)
		}
		if want.group != "" && !slices.Contains(u.Groups, want.group) {
			t.Errorf("%s: groups %v, want %s", p.email, u.Groups, want.group)
		}
		if u.InvitationMessagesSent != 0 {
			t.Errorf("%s: Microsoft was asked to send %d invitation mails", p.email, u.InvitationMessagesSent)
		}
	}

	// Every user is in their environment with the instance's role, once.
	for name, in := range inst {
		var sus []struct {
			ObjectID      string   `json:"azureactivedirectoryobjectid"`
			InternalEmail string   `json:"internalemailaddress"`
			Roles         []string `json:"roles"`
		}
		api.get(t, "/_sim/instances/"+name+"/systemusers", &sus)
		byObject := map[string]int{}
		for i, su := range sus {
			byObject[su.ObjectID] = i + 1
		}
		for _, p := range people {
			if p.instance != name || objectIDs[p.email] == "" {
				continue
			}
			i := byObject[objectIDs[p.email]]
			if i == 0 {
				t.Errorf("%s: not a systemuser of %s", p.email, name)
				continue
			}
			su := sus[i-1]
			for _, r := range in.roles {
				if n := countEqualFold(su.Roles, r); n != 1 {
					t.Errorf("%s in %s: role %q held %d times (roles %v), want once", p.email, name, r, n, su.Roles)
				}
			}
			if name == "legacy" && !strings.EqualFold(su.InternalEmail, p.email) {
				t.Errorf("%s in legacy: internalemailaddress %q, want the invited address", p.email, su.InternalEmail)
			}
		}
	}

	// Mails: at least one per user; a second one only where a worker died
	// between sending and recording it.
	var mails []struct {
		From   string   `json:"from"`
		To     []string `json:"to"`
		SentAt string   `json:"sentAt"`
	}
	api.get(t, "/_sim/mail", &mails)
	perAddress := map[string][]string{}
	for _, m := range mails {
		for _, to := range m.To {
			perAddress[strings.ToLower(to)] = append(perAddress[strings.ToLower(to)], m.SentAt)
		}
	}
	if len(mails) < users {
		t.Errorf("%d mails, want at least %d", len(mails), users)
	}
	var twice []string
	for _, p := range people {
		got := perAddress[p.email]
		switch {
		case len(got) == 0:
			t.Errorf("%s: no mail", p.email)
		case len(got) > 1+workerKills:
			t.Errorf("%s: %d mails (%v), more than 1 + %d worker kills", p.email, len(got), got, workerKills)
		case len(got) > 1:
			twice = append(twice, fmt.Sprintf("%s %v", p.email, got))
		}
	}
	sort.Strings(twice)
	t.Logf("mails: %d for %d users; %d addresses mailed more than once (%d worker kills): %v",
		len(mails), users, len(twice), workerKills, twice)

	// No dead letter.
	if dl := chaosDeadLetters(js); len(dl) != 0 {
		t.Errorf("%d dead letters, want none:\n%s", len(dl), strings.Join(dl, "\n"))
	}
	t.Logf("%8s  done", since())
}

// chaosWait polls cond every 50 ms until it holds, failing the test after d.
func chaosWait(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// chaosWorkerConns counts the broker's client connections named
// guestflow-worker (one per worker process), from its monitoring endpoint;
// -1 if the endpoint does not answer.
func chaosWorkerConns(monPort int) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/connz?limit=1000", monPort))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var connz struct {
		Connections []struct {
			Name string `json:"name"`
		} `json:"connections"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&connz); err != nil {
		return -1
	}
	n := 0
	for _, c := range connz.Connections {
		if c.Name == "guestflow-worker" {
			n++
		}
	}
	return n
}

// chaosSubjectCount is how many messages stream holds on subject.
func chaosSubjectCount(js jetstream.JetStream, stream, subject string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, err
	}
	return info.State.Subjects[subject], nil
}

// chaosOnboardingIDs reads every onboarded event and counts them per
// onboarding id.
func chaosOnboardingIDs(js jetstream.JetStream) (map[string]int, error) {
	n, err := chaosSubjectCount(js, worker.Stream, events.SubjectOnboarded)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, worker.Stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.SubjectOnboarded}})
	if err != nil {
		return nil, err
	}
	ids := map[string]int{}
	for got := uint64(0); got < n; got++ {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return nil, fmt.Errorf("after %d of %d onboarded events: %w", got, n, err)
		}
		ev, err := events.Decode(m.Subject(), m.Headers(), m.Data())
		if err != nil {
			return nil, fmt.Errorf("an onboarded event does not decode: %w", err)
		}
		ids[events.OnboardingID(ev)]++
	}
	return ids, nil
}

// chaosSettle waits until no step consumer has anything pending or unacked.
func chaosSettle(t *testing.T, js jetstream.JetStream, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for _, name := range []string{"invite", "license", "role", "notify"} {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			c, err := js.Consumer(ctx, worker.Stream, name)
			var info *jetstream.ConsumerInfo
			if err == nil {
				info, err = c.Info(ctx)
			}
			cancel()
			if err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
				break
			}
			if time.Now().After(deadline) {
				if info != nil {
					t.Fatalf("consumer %s did not settle within %s: %d pending, %d unacked, %d redelivered",
						name, d, info.NumPending, info.NumAckPending, info.NumRedelivered)
				}
				t.Fatalf("consumer %s did not settle within %s: %v", name, d, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// chaosDeadLetters describes every message in the dead-letter stream.
func chaosDeadLetters(js jetstream.JetStream) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, worker.DLQStream)
	if err != nil {
		return []string{"dead-letter stream: " + err.Error()}
	}
	st := s.CachedInfo().State
	var out []string
	for seq := st.FirstSeq; st.Msgs > 0 && seq <= st.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		h := m.Header
		out = append(out, fmt.Sprintf("%s step=%s reason=%s attempts=%s onboarding=%s status=%s error=%s",
			m.Subject, h.Get(worker.HeaderStep), h.Get(worker.HeaderReason), h.Get(worker.HeaderAttempts),
			h.Get(worker.HeaderOnboardingID), h.Get(worker.HeaderHTTPStatus), h.Get(worker.HeaderError)))
	}
	return out
}

func countEqualFold(list []string, s string) int {
	n := 0
	for _, v := range list {
		if strings.EqualFold(v, s) {
			n++
		}
	}
	return n
}

// chaosSim calls the emulator's inspection API over HTTPS, trusting the CA
// it wrote beside its configuration.
type chaosSim struct {
	base string
	hc   *http.Client
}

func chaosSimClient(t *testing.T, base, caFile string) *chaosSim {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", caFile)
	}
	return &chaosSim{base: base, hc: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}}
}

func (s *chaosSim) get(t *testing.T, path string, v any) {
	t.Helper()
	if err := s.try(path, v); err != nil {
		t.Fatal(err)
	}
}

func (s *chaosSim) try(path string, v any) error {
	resp, err := s.hc.Get(s.base + path)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// sideEffects summarises, for a failure message, what the emulator has
// done so far.
func (s *chaosSim) sideEffects() string {
	var st struct {
		Invitations int                       `json:"invitations"`
		Faults      int                       `json:"faults"`
		Calls       map[string]map[string]int `json:"calls"`
	}
	var users []struct {
		Mail string `json:"mail"`
	}
	if err := s.try("/_sim/stats", &st); err != nil {
		return err.Error()
	}
	if err := s.try("/_sim/users", &users); err != nil {
		return err.Error()
	}
	ours := 0
	for _, u := range users {
		if strings.HasPrefix(u.Mail, "guest.") && strings.HasSuffix(u.Mail, ".example") {
			ours++
		}
	}
	return fmt.Sprintf("%d of the test's guests in the directory, %d invitations, %d license assignments, %d role associations, %d mails sent, %d faults injected",
		ours, st.Invitations, st.Calls["POST /v1.0/users/{id}/assignLicense"]["200"],
		st.Calls["POST /instances/{instance}/api/data/v9.2/systemusers({id})/systemuserroles_association/$ref"]["204"],
		st.Calls["POST /v1.0/users/{id}/sendMail"]["202"], st.Faults)
}
