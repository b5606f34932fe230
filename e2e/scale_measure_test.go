//go:build linux

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/guestflow/guestflow/internal/app"
	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// TestScaleMeasure measures, on the real binaries, what waking a step from
// zero costs; docs/deploy.md ("Scaling from zero") quotes its numbers. It
// runs only with GUESTFLOW_SCALE_MEASURE set to a number of repetitions:
//
//	GUESTFLOW_SCALE_MEASURE=5 go test -count=1 -run TestScaleMeasure -v ./e2e/
//
// (without -race, which the binary would be built with too, and which
// would make it several times bigger and slower). GUESTFLOW_SCALE_ARGS
// adds flags to every worker, e.g. "--write-rate 0" to see what the
// shared write pacing adds.
//
// The broker is the embedded server of TestScaleFromZero (account
// GUESTFLOW), in the test process; the emulator is `guestflow graphsim
// --sync-delay 0`, so that no Dataverse sync delay hides the workers' own
// time; each worker is a `guestflow worker <step> -v` process started
// after its consumer exists (a first `worker all` made them, as a
// deployment's first rollout does), as a pod KEDA starts is. It measures:
//
//   - wake: one joined event waiting, the four step processes started at
//     once; from the starts until each step's output event, the last being
//     guestflow.user.onboarded.
//   - idle RSS: `guestflow worker invite` with nothing to do, once its pull
//     request waits at the broker and ten seconds more have passed: VmRSS
//     (and VmHWM, the peak) from /proc/<pid>/status; the same for
//     `worker all`.
//   - first fetch: one joined event waiting, `guestflow worker invite`
//     started; from the start until its "worker started" log line, until
//     the broker has delivered the event (the consumer's delivered
//     sequence moves, polled every 2 ms: the first pull reached the
//     server and was answered), and until guestflow.user.invited is
//     published.
func TestScaleMeasure(t *testing.T) {
	reps, _ := strconv.Atoi(os.Getenv("GUESTFLOW_SCALE_MEASURE"))
	if reps < 1 {
		t.Skip("set GUESTFLOW_SCALE_MEASURE=<repetitions> to measure scaling from zero")
	}
	gf := buildGuestflow(t)
	tmp := t.TempDir()
	ns := scaleBroker(t)

	simPort := chaosFreePort(t)
	cfgPath := filepath.Join(tmp, "guestflow.yaml")
	sim := newChaosProc(t, tmp, "graphsim", gf, nil, "graphsim",
		"--addr", fmt.Sprintf("127.0.0.1:%d", simPort), "--print-config", cfgPath, "--sync-delay", "0")
	sim.start()
	chaosWait(t, 20*time.Second, "graphsim writing its configuration", func() bool {
		return sim.logContains("configuration written to") && chaosAccepts(simPort)
	})

	nc, err := nats.Connect(ns.ClientURL(), nats.Name("e2e-measure"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	_, js, err := app.Connect(config.NATS{URL: ns.ClientURL()}, "e2e-measure-js")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.Provision(context.Background(), js, worker.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	env := chaosEnv("AZURE_CLIENT_ID=guestflow-dev", "AZURE_CLIENT_SECRET=guestflow-dev-secret")
	proc := func(name string, steps ...string) *chaosProc {
		args := append(append([]string{"worker"}, steps...), "--config", cfgPath, "--nats", ns.ClientURL(), "-v")
		args = append(args, strings.Fields(os.Getenv("GUESTFLOW_SCALE_ARGS"))...)
		return newChaosProc(t, tmp, name, gf, env, args...)
	}
	var procs []*chaosProc
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range append(procs, sim) {
				t.Logf("---- last lines of %s ----\n%s", p.name, p.tail(15))
			}
		}
	})

	// The first rollout: one pod per step creates its consumer.
	first := proc("first-rollout", "all")
	procs = append(procs, first)
	first.start()
	consumerInfo := func(step string) (delivered uint64, waiting int) {
		c, err := js.Consumer(context.Background(), worker.Stream, step)
		if err != nil {
			return 0, -1
		}
		info, err := c.Info(context.Background())
		if err != nil {
			return 0, -1
		}
		return info.Delivered.Consumer, info.NumWaiting
	}
	chaosWait(t, 30*time.Second, "the consumers", func() bool {
		for _, step := range app.StepNames {
			if _, w := consumerInfo(step); w < 0 {
				return false
			}
		}
		return true
	})
	first.kill()

	// seen records when each output event of an onboarding was published.
	var mu sync.Mutex
	seen := map[string]time.Time{} // subject + " " + onboarding id
	outputs := []string{events.SubjectInvited, events.SubjectLicensed, events.SubjectRoleAssigned, events.SubjectOnboarded}
	for _, subj := range outputs {
		if _, err := nc.Subscribe(subj, func(m *nats.Msg) {
			at := time.Now()
			ev, err := events.Decode(m.Subject, m.Header, m.Data)
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if k := m.Subject + " " + events.OnboardingID(ev); seen[k].IsZero() {
				seen[k] = at
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	awaitOutput := func(subj, id string, d time.Duration) time.Time {
		t.Helper()
		var at time.Time
		chaosWait(t, d, subj+" of "+id, func() bool {
			mu.Lock()
			defer mu.Unlock()
			at = seen[subj+" "+id]
			return !at.IsZero()
		})
		return at
	}
	publish := func(id string) {
		t.Helper()
		(&system{t: t, js: js}).publishJoined(id, events.Joined{
			Email: id + "@fabrikam.com", GivenName: "Ana", Surname: "Silva", UsageLocation: "PT", Instance: "sales",
		})
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

	// Wake: four step processes, one joined event waiting.
	steps := map[string]*chaosProc{}
	for _, step := range app.StepNames {
		steps[step] = proc("worker-"+step, step)
		procs = append(procs, steps[step])
	}
	wake := map[string][]float64{}
	for i := range reps {
		id := fmt.Sprintf("wake-%d", i)
		publish(id)
		t0 := time.Now()
		for _, step := range app.StepNames {
			steps[step].start()
		}
		line := []string{}
		for j, subj := range outputs {
			d := ms(awaitOutput(subj, id, 60*time.Second).Sub(t0))
			wake[app.StepNames[j]] = append(wake[app.StepNames[j]], d)
			line = append(line, fmt.Sprintf("%s %.0f ms", subj, d))
		}
		t.Logf("wake #%d: from starting the four processes: %s", i+1, strings.Join(line, ", "))
		for _, step := range app.StepNames {
			steps[step].kill()
		}
	}

	// Idle RSS.
	rss := map[string][][2]int{}
	for _, what := range []string{"invite", "all"} {
		p := proc("idle-"+what, what)
		procs = append(procs, p)
		for i := range reps {
			p.start()
			chaosWait(t, 30*time.Second, "the idle worker's pull", func() bool {
				_, w := consumerInfo("invite")
				return w > 0
			})
			time.Sleep(10 * time.Second)
			r, hwm := procStatusKB(t, p.pid())
			rss[what] = append(rss[what], [2]int{r, hwm})
			t.Logf("idle `guestflow worker %s` #%d (pid %d): VmRSS %d kB, VmHWM %d kB", what, i+1, p.pid(), r, hwm)
			p.kill()
		}
	}

	// First fetch.
	inv := proc("first-fetch", "invite")
	procs = append(procs, inv)
	var started, fetched, done []float64
	for i := range reps {
		id := fmt.Sprintf("fetch-%d", i)
		publish(id)
		before, _ := consumerInfo("invite")
		t0 := time.Now()
		inv.start()
		var tf time.Time
		for deadline := t0.Add(30 * time.Second); tf.IsZero(); time.Sleep(2 * time.Millisecond) {
			if d, _ := consumerInfo("invite"); d > before {
				tf = time.Now()
			} else if time.Now().After(deadline) {
				t.Fatalf("the joined event was not delivered within 30s of starting the worker")
			}
		}
		td := awaitOutput(events.SubjectInvited, id, 30*time.Second)
		ts := logTime(t, inv, "worker started")
		started, fetched, done = append(started, ms(ts.Sub(t0))), append(fetched, ms(tf.Sub(t0))), append(done, ms(td.Sub(t0)))
		t.Logf("first fetch #%d: from the start of `guestflow worker invite`: \"worker started\" logged %.0f ms, event delivered %.0f ms, guestflow.user.invited %.0f ms",
			i+1, ms(ts.Sub(t0)), ms(tf.Sub(t0)), ms(td.Sub(t0)))
		inv.kill()
	}

	stat := func(v []float64) string {
		s := slices.Clone(v)
		slices.Sort(s)
		return fmt.Sprintf("median %.0f ms (min %.0f, max %.0f)", s[len(s)/2], s[0], s[len(s)-1])
	}
	kb := func(v [][2]int) string {
		var r []int
		for _, x := range v {
			r = append(r, x[0])
		}
		slices.Sort(r)
		return fmt.Sprintf("VmRSS median %.1f MiB (min %.1f, max %.1f)", float64(r[len(r)/2])/1024, float64(r[0])/1024, float64(r[len(r)-1])/1024)
	}
	t.Logf("summary over %d runs:", reps)
	for _, step := range app.StepNames {
		t.Logf("  wake, four processes started with one event waiting, until %-28s %s", outputs[slices.Index(app.StepNames, step)]+":", stat(wake[step]))
	}
	t.Logf("  idle `guestflow worker invite`: %s", kb(rss["invite"]))
	t.Logf("  idle `guestflow worker all`:    %s", kb(rss["all"]))
	t.Logf("  `guestflow worker invite` start to \"worker started\": %s", stat(started))
	t.Logf("  `guestflow worker invite` start to first delivery:   %s", stat(fetched))
	t.Logf("  `guestflow worker invite` start to invited:          %s", stat(done))
}

// procStatusKB reads VmRSS and VmHWM of pid, in kB.
func procStatusKB(t *testing.T, pid int) (rss, hwm int) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		n, _ := strconv.Atoi(fields[1])
		switch fields[0] {
		case "VmRSS:":
			rss = n
		case "VmHWM:":
			hwm = n
		}
	}
	if rss == 0 {
		t.Fatalf("/proc/%d/status has no VmRSS", pid)
	}
	return rss, hwm
}

var logTimeAttr = regexp.MustCompile(`time=(\S+)`)

// logTime is the time of the last line of p's log that contains s.
func logTime(t *testing.T, p *chaosProc, s string) time.Time {
	t.Helper()
	var at time.Time
	chaosWait(t, 10*time.Second, s+" in "+p.name+"'s log", func() bool {
		lines := p.grep(s, 1)
		if len(lines) == 0 {
			return false
		}
		m := logTimeAttr.FindStringSubmatch(lines[0])
		if m == nil {
			t.Fatalf("no time= in %q", lines[0])
		}
		var err error
		if at, err = time.Parse(time.RFC3339Nano, m[1]); err != nil {
			t.Fatalf("%q: %v", lines[0], err)
		}
		return true
	})
	return at
}
