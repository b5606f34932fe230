//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/index"
	"github.com/guestflow/guestflow/internal/memo"
	"github.com/guestflow/guestflow/internal/throttle"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// TestClusterNodeLoss onboards 200 guests through the real binaries on a
// three-server JetStream cluster, and SIGKILLs the server that leads the
// event stream while they are in flight.
//
// Design:
//   - Three standalone nats-server processes, clustered on loopback, each
//     with its own store folder. The test waits for the cluster's JetStream
//     meta leader before anything else, as `guestflow provision` needs it.
//   - `guestflow provision` without nats.replicas creates both streams and
//     the four buckets on one server, as releases before nats.replicas
//     did. Two `guestflow worker all` processes with
//     GUESTFLOW_NATS_REPLICAS=3 raise each to three replicas in place when
//     they open it; `guestflow provision` with the same variable finds all
//     six unchanged afterwards. The test checks the replicas and the DLQ's byte limit,
//     and later that every step's consumer, created by the workers without
//     replicas of its own, has its stream's three.
//   - The workers connect with all three URLs, and the emulator answers
//     them without injected faults: every count below is exact.
//   - All 200 joined events are published at once, so the onboardings are
//     in flight together (paced by the tenant's shared write budget). At a
//     fifth of them onboarded, the server that leads GUESTFLOW (its stream
//     info's cluster leader) is SIGKILLed; the test times the election of a
//     new stream leader and, if the meta leader died with it, of a new meta
//     leader. At half, the killed server is restarted on the same port and
//     store folder.
//   - Afterwards, once every consumer has settled and every replica of every
//     stream and bucket is current again (the restarted server caught up):
//     one invitation, one license assignment and one role association per
//     user, each user once in the directory, no dead letter, and no panic or
//     fatal error in any server's log.
//
// It takes about a minute on two cores (within a three-minute budget);
// -short skips it. GUESTFLOW_CHAOS_DIR=DIR keeps the logs and the stores in
// a new folder under DIR.
func TestClusterNodeLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: three servers and several processes for about a minute")
	}
	const (
		users       = 200
		workerProcs = 2
		servers     = 3
		ackWait     = 5 * time.Second
		budget      = 3 * time.Minute
	)
	began := time.Now()
	since := func() string { return time.Since(began).Round(100 * time.Millisecond).String() }
	tmp := t.TempDir()
	if dir := os.Getenv("GUESTFLOW_CHAOS_DIR"); dir != "" {
		tmp = filepath.Join(dir, "cluster-"+time.Now().Format("20060102-150405"))
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Logf("logs kept in %s", tmp)
	}
	root := chaosModuleRoot(t)
	gf := chaosBuild(t, root, tmp, "guestflow", "./cmd/guestflow")
	nsBin := chaosBuild(t, root, tmp, "nats-server", "github.com/nats-io/nats-server/v2")
	t.Logf("%8s  built guestflow and nats-server in %s", since(), tmp)
	deadline := began.Add(budget)

	var procs, nodes, workers []*chaosProc
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

	// The cluster. Its nine ports are picked free and then bound by the
	// servers, which another process on the machine may take in between:
	// a server that cannot bind ends the attempt, and the cluster is
	// started again on new ports.
	clientPorts, monPorts, routePorts := make([]int, servers), make([]int, servers), make([]int, servers)
	names := make([]string, servers)
	var serverURLs string
	meta := func(i int) (clusterJSZ, error) { return clusterMeta(monPorts[i]) }
	formed := func() bool {
		var leader string
		for i := range servers {
			m, err := meta(i)
			if err != nil || m.Leader == "" || m.Size != servers || (leader != "" && m.Leader != leader) {
				return false
			}
			leader = m.Leader
		}
		return true
	}
	for attempt := 1; ; attempt++ {
		var urls, routes []string
		for i := range servers {
			clientPorts[i], monPorts[i], routePorts[i] = chaosFreePort(t), chaosFreePort(t), chaosFreePort(t)
			urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]))
			routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", routePorts[i]))
		}
		serverURLs = strings.Join(urls, ",")
		nodes = nil
		for i := range servers {
			names[i] = fmt.Sprintf("n%d", i)
			nodes = append(nodes, newChaosProc(t, tmp, fmt.Sprintf("nats-%s-%d", names[i], attempt), nsBin, nil,
				"-js", "-sd", filepath.Join(tmp, fmt.Sprintf("store-%s-%d", names[i], attempt)), "-n", names[i],
				"-a", "127.0.0.1", "-p", strconv.Itoa(clientPorts[i]), "-m", strconv.Itoa(monPorts[i]),
				"--cluster_name", "guestflow", "--cluster", routes[i], "--routes", strings.Join(routes, ",")))
		}
		for _, n := range nodes {
			n.start()
		}
		bound := func() bool {
			for _, n := range nodes {
				if len(n.problems()) > 0 && n.logContains("address already in use") {
					return false
				}
			}
			return true
		}
		wait := time.Now().Add(30 * time.Second)
		for bound() && !formed() && time.Now().Before(wait) {
			time.Sleep(50 * time.Millisecond)
		}
		if bound() || attempt == 3 {
			break
		}
		t.Logf("%8s  a port was taken before its server bound it; starting the cluster again", since())
		for _, n := range nodes {
			n.kill()
		}
	}
	procs = append(procs, nodes...)
	if !formed() {
		t.Fatal("the cluster has no JetStream meta leader that every server follows within 30s")
	}
	m0, _ := meta(0)
	t.Logf("%8s  %d servers clustered, meta leader %s", since(), servers, m0.Leader)

	// The emulator.
	simPort := chaosFreePort(t)
	cfgPath := filepath.Join(tmp, "guestflow.yaml")
	sim := newChaosProc(t, tmp, "graphsim", gf, nil, "graphsim",
		"--addr", fmt.Sprintf("127.0.0.1:%d", simPort), "--print-config", cfgPath, "--sync-delay", "200ms")
	procs = append(procs, sim)
	sim.start()
	chaosWait(t, 20*time.Second, "graphsim writing its configuration", func() bool {
		return sim.logContains("configuration written to") && chaosAccepts(simPort)
	})
	api := chaosSimClient(t, fmt.Sprintf("https://127.0.0.1:%d", simPort), filepath.Join(tmp, "graphsim-ca.pem"))

	// Provision on one server (no nats.replicas) as an older release
	// did; the workers, given three, raise every stream and bucket in
	// place, and provision given three then finds nothing to change.
	runProvision := func(env []string) string {
		t.Helper()
		cmd := exec.Command(gf, "provision", "--config", cfgPath, "--nats", serverURLs)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("guestflow provision: %v\n%s", err, out)
		}
		return string(out)
	}
	env := chaosEnv("AZURE_CLIENT_ID=guestflow-dev", "AZURE_CLIENT_SECRET=guestflow-dev-secret", "GUESTFLOW_NATS_REPLICAS=3")
	if out := runProvision(chaosEnv()); strings.Count(out, "created") != 6 {
		t.Errorf("guestflow provision created %d streams and buckets, want 6:\n%s", strings.Count(out, "created"), out)
	}
	t.Logf("%8s  provisioned at one replica", since())

	nc, err := nats.Connect(serverURLs, nats.Name("cluster-test"), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kept := []string{worker.Stream, worker.DLQStream, "KV_" + memo.Bucket, "KV_" + worker.LeaseBucket, "KV_" + index.Bucket, "KV_" + throttle.Bucket}
	checkReplicas := func(want int) {
		t.Helper()
		for _, name := range kept {
			info, err := clusterStreamInfo(js, name)
			if err != nil {
				t.Fatalf("stream %s: %v", name, err)
			}
			if info.Config.Replicas != want {
				t.Errorf("stream %s has %d replicas, want %d", name, info.Config.Replicas, want)
			}
			if name == worker.DLQStream && (info.Config.MaxBytes != worker.DefaultDLQMaxBytes || info.Config.Discard != jetstream.DiscardNew) {
				t.Errorf("%s: MaxBytes %d, discard %v; want %d, discard new", name, info.Config.MaxBytes, info.Config.Discard, worker.DefaultDLQMaxBytes)
			}
		}
	}
	checkReplicas(1)

	// The workers.
	for i := range workerProcs {
		w := newChaosProc(t, tmp, fmt.Sprintf("worker-%d", i), gf, env,
			"worker", "all", "--config", cfgPath, "--nats", serverURLs,
			"--ack-wait", ackWait.String(), "--backoff-max", "2s", "-v")
		workers = append(workers, w)
		procs = append(procs, w)
		w.start()
	}
	workersExited := func() string {
		var out []string
		for _, w := range workers {
			out = append(out, w.problems()...)
		}
		return strings.Join(out, "; ")
	}
	chaosWait(t, 60*time.Second, "the workers creating their consumers", func() bool {
		if p := workersExited(); p != "" {
			t.Fatalf("a worker ended: %s", p)
		}
		for _, step := range []string{"invite", "license", "role", "notify"} {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := js.Consumer(ctx, worker.Stream, step)
			cancel()
			if err != nil {
				return false
			}
		}
		return true
	})
	t.Logf("%8s  %d worker processes ready", since(), workerProcs)

	// Progress, polled; an election only pauses it.
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

	// 200 joined events at once, each retried until its PubAck under the
	// same Nats-Msg-Id.
	instances := []string{"sales", "service", "legacy"}
	type person struct{ id, email, instance string }
	people := make([]person, users)
	for i := range people {
		people[i] = person{fmt.Sprintf("cluster-%03d", i), fmt.Sprintf("guest.%03d@cluster%d.example", i, i%5), instances[i%len(instances)]}
	}
	publishErr := make(chan error, 1)
	bg.Add(1)
	go func() {
		defer bg.Done()
		for i, p := range people {
			ev, err := events.NewJoined(p.id, "hr/cluster", events.Joined{
				Email: p.email, GivenName: "Guest", Surname: fmt.Sprintf("Number %03d", i),
				UsageLocation: "PT", Instance: p.instance,
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
				_, err = js.PublishMsg(ctx, &nats.Msg{Subject: events.SubjectJoined, Header: nats.Header(header), Data: body}, jetstream.WithMsgID(ev.ID()))
				cancel()
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					publishErr <- fmt.Errorf("event %s not published: %v", p.id, err)
					return
				}
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
		t.Logf("%8s  all %d joined events published", since(), users)
	}()
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
				t.Fatalf("%s: only %d of %d onboarded after %s; dead letters: %v; so far: %s",
					what, onboarded.Load(), users, budget, chaosDeadLetters(js), api.sideEffects())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// The stream leader goes.
	awaitProgress(users/5, "before killing the stream leader")
	info, err := clusterStreamInfo(js, worker.Stream)
	if err != nil || info.Cluster == nil || info.Cluster.Leader == "" {
		t.Fatalf("no leader of %s: %+v, %v", worker.Stream, info, err)
	}
	victim := slices.Index(names, info.Cluster.Leader)
	if victim < 0 {
		t.Fatalf("the leader of %s is %q, not one of %v", worker.Stream, info.Cluster.Leader, names)
	}
	survivor := (victim + 1) % servers
	metaBefore, _ := meta(survivor)
	pid := nodes[victim].pid()
	nodes[victim].kill()
	killedAt, atKill := time.Now(), onboarded.Load()
	t.Logf("%8s  SIGKILLed %s (pid %d), the leader of %s (meta leader %s), at %d onboarded",
		since(), names[victim], pid, worker.Stream, metaBefore.Leader, atKill)
	var streamElected, metaElected time.Duration
	chaosWait(t, 30*time.Second, "a new leader of "+worker.Stream, func() bool {
		if metaElected == 0 && metaBefore.Leader == names[victim] {
			if m, err := meta(survivor); err == nil && m.Leader != "" && m.Leader != names[victim] {
				metaElected = time.Since(killedAt)
			}
		}
		// A short time-out: a request lost with the leader costs the
		// measurement no more than this.
		info, err := clusterStreamInfoWithin(js, worker.Stream, 300*time.Millisecond)
		if err != nil || info.Cluster == nil || info.Cluster.Leader == "" || info.Cluster.Leader == names[victim] {
			return false
		}
		streamElected = time.Since(killedAt)
		return true
	})
	if metaBefore.Leader == names[victim] {
		chaosWait(t, 30*time.Second, "a new meta leader", func() bool {
			if m, err := meta(survivor); err == nil && m.Leader != "" && m.Leader != names[victim] {
				if metaElected == 0 {
					metaElected = time.Since(killedAt)
				}
				return true
			}
			return false
		})
		t.Logf("%8s  meta leader elected after %s", since(), metaElected.Round(time.Millisecond))
	}
	info, _ = clusterStreamInfo(js, worker.Stream)
	t.Logf("%8s  %s led by %s after %s", since(), worker.Stream, info.Cluster.Leader, streamElected.Round(time.Millisecond))

	// ... and comes back on the same store.
	awaitProgress(users/2, "before restarting the killed server")
	atRestart := onboarded.Load()
	nodes[victim].start()
	restartedAt := time.Now()
	chaosWait(t, 20*time.Second, names[victim]+" accepting connections again", func() bool {
		return chaosAccepts(clientPorts[victim]) && chaosAccepts(monPorts[victim])
	})
	t.Logf("%8s  restarted %s on its store after %s down, at %d onboarded", since(), names[victim],
		restartedAt.Sub(killedAt).Round(100*time.Millisecond), atRestart)

	// Every onboarding finishes.
	var seen map[string]int
	for {
		awaitProgress(users, "waiting for every onboarding")
		if seen, err = clusterOnboardingIDs(js); err == nil && len(seen) >= users {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d distinct onboardings finished after %s (%v); dead letters: %v", len(seen), budget, err, chaosDeadLetters(js))
		}
		time.Sleep(time.Second)
	}
	t.Logf("%8s  all %d onboarded", since(), len(seen))
	chaosSettle(t, js, 60*time.Second)
	t.Logf("%8s  every consumer settled", since())
	// The workers raised what they opened (the index on its first
	// message) to three replicas, which provision given three finds
	// unchanged.
	checkReplicas(3)
	if out := runProvision(env); strings.Count(out, "unchanged") != 6 {
		t.Errorf("guestflow provision with nats.replicas 3 after the workers raised the replicas:\n%s", out)
	}

	// The restarted server has caught up: every replica of every stream,
	// bucket and consumer is current again.
	caughtUp := func() string {
		for _, name := range kept {
			info, err := clusterStreamInfo(js, name)
			if err != nil {
				return fmt.Sprintf("%s: %v", name, err)
			}
			if lag := replicaLag(info.Cluster, servers); lag != "" {
				return name + ": " + lag
			}
		}
		for _, step := range []string{"invite", "license", "role", "notify"} {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			c, err := js.Consumer(ctx, worker.Stream, step)
			var ci *jetstream.ConsumerInfo
			if err == nil {
				ci, err = c.Info(ctx)
			}
			cancel()
			if err != nil {
				return fmt.Sprintf("consumer %s: %v", step, err)
			}
			if ci.Config.Replicas != 0 {
				return fmt.Sprintf("consumer %s has replicas of its own (%d), not its stream's", step, ci.Config.Replicas)
			}
			if lag := replicaLag(ci.Cluster, servers); lag != "" {
				return "consumer " + step + ": " + lag
			}
		}
		return ""
	}
	var behind string
	for behind = caughtUp(); behind != "" && time.Now().Before(deadline); behind = caughtUp() {
		time.Sleep(200 * time.Millisecond)
	}
	if behind != "" {
		t.Fatalf("the cluster did not catch up: %s", behind)
	}
	t.Logf("%8s  every replica current again, %s after the restart", since(), time.Since(restartedAt).Round(100*time.Millisecond))

	// What the emulator saw: nothing twice.
	var stats struct {
		Invitations int                       `json:"invitations"`
		Calls       map[string]map[string]int `json:"calls"`
	}
	api.get(t, "/_sim/stats", &stats)
	byInstance := map[string]int{}
	for _, p := range people {
		byInstance[p.instance]++
	}
	const (
		licenseRoute = "POST /v1.0/users/{id}/assignLicense"
		groupRoute   = "POST /v1.0/groups/{id}/members/$ref"
		roleRoute    = "POST /instances/{instance}/api/data/v9.2/systemusers({id})/systemuserroles_association/$ref"
	)
	for _, c := range []struct {
		what      string
		got, want int
		route     string
	}{
		{"invitations (201)", stats.Invitations, users, "POST /v1.0/invitations"},
		{"license assignments (200)", stats.Calls[licenseRoute]["200"], users, licenseRoute},
		{"role associations (204)", stats.Calls[roleRoute]["204"], users, roleRoute},
		{"security group adds (204, sales only)", stats.Calls[groupRoute]["204"], byInstance["sales"], groupRoute},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d, one per user (%s answered %v)", c.what, c.got, c.want, c.route, stats.Calls[c.route])
		}
	}
	var simUsers []struct {
		Mail             string   `json:"mail"`
		UserType         string   `json:"userType"`
		AssignedLicenses []string `json:"assignedLicenses"`
	}
	api.get(t, "/_sim/users", &simUsers)
	perMail := map[string]int{}
	for _, u := range simUsers {
		perMail[strings.ToLower(u.Mail)]++
		if strings.HasSuffix(u.Mail, ".example") && (u.UserType != "Guest" || len(u.AssignedLicenses) != 1) {
			t.Errorf("%s: userType %q, licenses %v; want a guest with one license", u.Mail, u.UserType, u.AssignedLicenses)
		}
	}
	for _, p := range people {
		if seen[p.id] == 0 {
			t.Errorf("onboarding %s has no onboarded event", p.id)
		}
		if perMail[p.email] != 1 {
			t.Errorf("%s: %d directory users, want 1", p.email, perMail[p.email])
		}
	}
	var mails []struct {
		To []string `json:"to"`
	}
	api.get(t, "/_sim/mail", &mails)
	perAddress := map[string]int{}
	for _, m := range mails {
		for _, to := range m.To {
			perAddress[strings.ToLower(to)]++
		}
	}
	var twice []string
	for _, p := range people {
		switch n := perAddress[p.email]; {
		case n == 0:
			t.Errorf("%s: no mail", p.email)
		case n > 1:
			twice = append(twice, fmt.Sprintf("%s ×%d", p.email, n))
		}
	}
	t.Logf("mails: %d for %d users; mailed more than once: %v", len(mails), users, twice)
	if dl := chaosDeadLetters(js); len(dl) != 0 {
		t.Errorf("%d dead letters, want none:\n%s", len(dl), strings.Join(dl, "\n"))
	}
	for _, n := range nodes {
		for _, bad := range []string{"panic:", "[FTL]"} {
			if lines := n.grep(bad, 5); len(lines) > 0 {
				t.Errorf("%s logged %q:\n%s", n.name, bad, strings.Join(lines, "\n"))
			}
		}
	}
	for _, w := range workers {
		if lines := w.grep("panic:", 5); len(lines) > 0 {
			t.Errorf("%s panicked:\n%s", w.name, strings.Join(lines, "\n"))
		}
	}
	metaMoved := "stayed on " + metaBefore.Leader
	if metaBefore.Leader == names[victim] {
		metaMoved = "elected after " + metaElected.Round(time.Millisecond).String()
	}
	var retried []string
	for _, w := range workers {
		retried = append(retried, fmt.Sprintf("%s %d", w.name, len(w.grep("reason=transient", 1<<20))))
	}
	t.Logf("%8s  done: a new %s leader %s after the kill, meta leader %s; %d onboarded while %s was down; transient retries: %s",
		since(), worker.Stream, streamElected.Round(time.Millisecond), metaMoved, atRestart-atKill, names[victim], strings.Join(retried, ", "))
}

// clusterOnboardingIDs counts the onboarded events per onboarding id,
// reading GUESTFLOW message by message. chaosOnboardingIDs' ordered
// consumer is no use here: right after a server's restart its pulls were
// answered "no responders" for minutes (nats-server v2.15.2, nats.go
// v1.55.0), while the workers' durable consumers delivered.
func clusterOnboardingIDs(js jetstream.JetStream) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, worker.Stream)
	if err != nil {
		return nil, err
	}
	st := s.CachedInfo().State
	ids := map[string]int{}
	for seq := st.FirstSeq; st.Msgs > 0 && seq <= st.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", seq, err)
		}
		if m.Subject != events.SubjectOnboarded {
			continue
		}
		ev, err := events.Decode(m.Subject, m.Header, m.Data)
		if err != nil {
			return nil, fmt.Errorf("an onboarded event does not decode: %w", err)
		}
		ids[events.OnboardingID(ev)]++
	}
	return ids, nil
}

// clusterJSZ is the meta group as a server's /jsz reports it.
type clusterJSZ struct {
	Leader string `json:"leader"`
	Size   int    `json:"cluster_size"`
}

// clusterMeta reads the JetStream meta group from the monitoring port.
func clusterMeta(monPort int) (clusterJSZ, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/jsz", monPort))
	if err != nil {
		return clusterJSZ{}, err
	}
	defer resp.Body.Close()
	var jsz struct {
		Meta *clusterJSZ `json:"meta_cluster"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&jsz); err != nil {
		return clusterJSZ{}, err
	}
	if jsz.Meta == nil {
		return clusterJSZ{}, errors.New("no meta_cluster in /jsz")
	}
	return *jsz.Meta, nil
}

// clusterStreamInfo is a stream's info, asked of its leader.
func clusterStreamInfo(js jetstream.JetStream, name string) (*jetstream.StreamInfo, error) {
	return clusterStreamInfoWithin(js, name, 3*time.Second)
}

func clusterStreamInfoWithin(js jetstream.JetStream, name string, d time.Duration) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.CachedInfo(), nil
}

// replicaLag says what keeps a group of want servers from being whole: no
// leader, a replica missing, offline, not current or lagging. "" when
// whole.
func replicaLag(c *jetstream.ClusterInfo, want int) string {
	switch {
	case c == nil || c.Leader == "":
		return "no leader"
	case len(c.Replicas) != want-1:
		return fmt.Sprintf("%d replicas beside the leader %s, want %d", len(c.Replicas), c.Leader, want-1)
	}
	for _, r := range c.Replicas {
		if r.Offline || !r.Current || r.Lag != 0 {
			return fmt.Sprintf("replica %s: offline %v, current %v, lag %d", r.Name, r.Offline, r.Current, r.Lag)
		}
	}
	return ""
}
