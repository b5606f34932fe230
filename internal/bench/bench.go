// Package bench measures guestflow under Graph's budgets: N onboardings
// published at once against the emulator with scaled budgets, worked off by
// worker processes that share nothing but NATS and the emulator. It runs the
// same load in several modes — guestflow as shipped (the adaptive pacer,
// told nothing of the budgets), the static pacer guestflow had before
// (told the write and invitation budgets), and a baseline with
// msgraph-sdk-go's own retry and no coordination — so the numbers can be
// compared. Matrix runs that over budgets, with and without a neighbour
// app taking part of the tenant's write budget mid-run.
package bench

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/app"
	"github.com/guestflow/guestflow/internal/broker"
	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/graphsim"
	"github.com/guestflow/guestflow/internal/throttle"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// Options describe one benchmark.
type Options struct {
	// N is the number of onboardings.
	N int
	// Replicas is the number of worker processes, each running all four
	// steps: every step has Replicas replicas.
	Replicas int
	// WriteLimit is the emulator's identity-write budget per app and
	// tenant.
	WriteLimit graphsim.Limit
	// TenantWriteLimit, InviteLimit, ResourceUnitLimit and MailLimit are
	// the emulator's other budgets (graphsim.Options); zero is unlimited.
	TenantWriteLimit, InviteLimit, ResourceUnitLimit, MailLimit graphsim.Limit
	// NeighbourShare is the share of TenantWriteLimit (WriteLimit when
	// that is unlimited, which it then becomes) another app of the tenant
	// spends from NeighbourFrom to NeighbourUntil after the publication;
	// 0 is no neighbour.
	NeighbourShare                float64
	NeighbourFrom, NeighbourUntil time.Duration
	// SyncDelay is the emulator's Dataverse sync delay.
	SyncDelay time.Duration
	// Concurrency is each worker's messages in flight.
	Concurrency int
	// Exe is the guestflow binary that runs the workers.
	Exe string
	// Timeout bounds each run.
	Timeout time.Duration
	// Progress receives a line now and then; nil is quiet.
	Progress io.Writer
	// Trace, when set, receives a line every quarter second with the
	// shared pacer's rates and the emulator's counters: for tuning.
	Trace io.Writer
	// Breakdown counts the messages clients publish by kind of subject
	// (Result.NATSMsgsBySubject), through a subscription to every
	// subject: a copy of each message more for the broker to send.
	Breakdown bool
	// ProfileDir, when set, is where each worker process writes a CPU
	// profile of its whole run, <mode>-worker-<i>.pprof (docs/profiling.md).
	ProfileDir string
}

// Result is one run's numbers, named as the issue asks.
type Result struct {
	Mode           string  `json:"mode"`
	Onboarded      int     `json:"onboarded"`
	MakespanS      float64 `json:"makespan_s"`
	IdealS         float64 `json:"ideal_s"`
	Ratio          float64 `json:"ratio"`
	Writes         int     `json:"writes"`
	Calls          int     `json:"calls"`
	Throttled      int     `json:"throttled"`
	ThrottledShare float64 `json:"throttled_share"`
	DeadLetters    int     `json:"dead_letters"`
	// DeadLetterReasons counts dead letters by step and reason.
	DeadLetterReasons  map[string]int `json:"dead_letter_reasons,omitempty"`
	P50S               float64        `json:"p50_s"`
	P99S               float64        `json:"p99_s"`
	CPUMsPerOnboarding float64        `json:"cpu_ms_per_onboarding"`
	// IdleCPUMsPerS is what the worker processes together spend per
	// second with nothing to do (consumers' pulls, watches, timers),
	// measured over IdleMeasure before the publication: the part of
	// CPUMsPerOnboarding that grows with the makespan, not with the work.
	IdleCPUMsPerS float64 `json:"idle_cpu_ms_per_s"`
	// WritesPerOnboarding is Writes over Onboarded; WritesFloor the
	// fewest the procedure allows (an invitation, the profile, the
	// license, and the group add where the instance has a group).
	WritesPerOnboarding float64 `json:"writes_per_onboarding"`
	WritesFloor         float64 `json:"writes_floor_per_onboarding"`

	// FloorS is the binding scope's floor: for each limited scope, the
	// units spent (the neighbour's writes included for the tenant-wide
	// scope) over its rate, the largest of them; Binding names that
	// scope and FloorRatio is MakespanS over FloorS. A scope whose units
	// all fit in one window has no floor: its window admits them at
	// once.
	FloorS     float64 `json:"floor_s"`
	Binding    string  `json:"binding_scope"`
	FloorRatio float64 `json:"floor_ratio"`
	// Scopes are the emulator's limited scopes, by its name for them.
	Scopes map[string]ScopeResult `json:"scopes,omitempty"`
	// NeighbourWrites are the tenant writes the neighbour made;
	// NeighbourBound says whether, with them, the tenant's writes over a
	// second ever reached 90 % of its budget while it ran (if not, the
	// neighbour took nothing guestflow wanted). RecoveryS is how long
	// after it stopped guestflow's writes over the trailing second came
	// back to 90 % of their rate over the 5 seconds before it started
	// (-1: they did not before the run ended; 0 when it was not bound).
	NeighbourWrites int      `json:"neighbour_writes,omitempty"`
	NeighbourBound  bool     `json:"neighbour_bound,omitempty"`
	RecoveryS       *float64 `json:"recovery_s,omitempty"`

	// NATSMsgsPerOnboarding is the messages the broker received from
	// every client (workers and the benchmark's own publications) over
	// the run, per onboarding: publications, requests, acks. Each is a
	// round trip or a write of some worker's, which is where much of
	// their CPU goes.
	NATSMsgsPerOnboarding float64 `json:"nats_msgs_per_onboarding"`
	// StoreBytes is what JetStream stores at the end of the run, streams
	// and buckets; Keys the values each bucket holds (with history 1,
	// one a key, delete markers included, until they expire).
	StoreBytes uint64         `json:"store_bytes"`
	Keys       map[string]int `json:"kv_keys,omitempty"`
	// MaxRSSMiB is the largest resident set of any worker process.
	MaxRSSMiB float64 `json:"max_worker_rss_mib"`
	// CallsByRoute are the API calls the emulator answered, per
	// onboarding, by "<METHOD> <route>" (every status): what a tenant's
	// and an instance's budgets are spent on.
	CallsByRoute map[string]float64 `json:"calls_by_route,omitempty"`
	// NATSMsgsBySubject, with Options.Breakdown, splits what a
	// subscriber to every subject sees by kind (see subjectClass), per
	// onboarding: publications, the replies the broker sends to
	// requesters' inboxes, and its deliveries to consumers (a delivery
	// keeps its message's subject: an event's pull deliveries and a
	// key's watch deliveries are counted apart from its publication).
	NATSMsgsBySubject map[string]float64 `json:"nats_msgs_by_subject,omitempty"`
}

// ScopeResult is one limited scope of the emulator's, in a run.
type ScopeResult struct {
	Limit     string  `json:"limit"`
	Spent     int     `json:"spent"`
	Throttled int     `json:"throttled"`
	FloorS    float64 `json:"floor_s"`
}

// WritesTolerance is how far above the floor a run's identity writes may
// be before Check fails it: a retry must never repeat a write that
// succeeded, so anything above is a bug, less a margin for an invitation
// Graph made but answered with a 5xx.
const WritesTolerance = 0.02

// Check reports what of r breaks guestflow's own promises: every
// onboarding onboarded, and identity writes at the floor.
func (r Result) Check(n int) error {
	var errs []error
	if r.Onboarded != n {
		errs = append(errs, fmt.Errorf("%s: %d of %d onboarded", r.Mode, r.Onboarded, n))
	}
	if r.WritesFloor > 0 && r.WritesPerOnboarding > r.WritesFloor*(1+WritesTolerance) {
		errs = append(errs, fmt.Errorf("%s: %.3f identity writes per onboarding, more than %.0f %% above the floor of %.3f",
			r.Mode, r.WritesPerOnboarding, 100*WritesTolerance, r.WritesFloor))
	}
	return errors.Join(errs...)
}

// Mode is how the workers treat Graph's budget.
type Mode struct {
	Name string
	// Args are the extra `guestflow worker` flags of the mode.
	Args []string
}

// Guestflow is guestflow as shipped, with the worker's default flags: the
// adaptive pacer, told nothing of the budgets, and one retry layer.
var Guestflow = Mode{Name: "guestflow"}

// Static is the pacer guestflow had before it adapted: writes and
// invitations paced at fixed rates (0: not paced), which the caller has to
// know — the benchmark tells it 95 % of the budgets.
func Static(writeRate, inviteRate float64) Mode {
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	return Mode{Name: "static", Args: []string{"--pacer", "static", "--write-rate", f(writeRate), "--invite-rate", f(inviteRate)}}
}

// StaticFor is Static at 95 % of o's write and invitation budgets.
func StaticFor(o Options) Mode {
	o.setDefaults()
	return Static(0.95*perSecond(o.WriteLimit), 0.95*perSecond(o.InviteLimit))
}

// Baseline is what a script on the SDK gets: msgraph-sdk-go's default retry
// (three retries honouring Retry-After) and no coordination between
// workers. guestflow's runtime still redelivers what the SDK gives up on.
var Baseline = Mode{Name: "baseline", Args: []string{"--coordinate=false", "--sdk-retry"}}

func (o *Options) setDefaults() {
	if o.N <= 0 {
		o.N = 1000
	}
	if o.Replicas <= 0 {
		o.Replicas = 3
	}
	if o.WriteLimit.Unlimited() {
		o.WriteLimit = graphsim.Limit{N: 100, Per: time.Second}
	}
	if o.NeighbourShare > 0 && o.TenantWriteLimit.Unlimited() {
		o.TenantWriteLimit = o.WriteLimit
	}
	if o.SyncDelay == 0 {
		o.SyncDelay = 200 * time.Millisecond
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// budget is the emulator's write budget in writes per second.
func (o *Options) budget() float64 { return perSecond(o.WriteLimit) }

// perSecond is a limit's rate, 0 when unlimited.
func perSecond(l graphsim.Limit) float64 {
	if l.Unlimited() {
		return 0
	}
	return float64(l.N) / l.Per.Seconds()
}

// neighbour is the schedule of o's neighbour, counted from the
// publication (Sim.RestartNeighbour).
func (o *Options) neighbour() graphsim.Schedule {
	if o.NeighbourShare <= 0 || o.NeighbourUntil <= o.NeighbourFrom {
		return nil
	}
	rate := o.NeighbourShare * perSecond(o.TenantWriteLimit)
	return graphsim.Schedule{{At: 0}, {At: o.NeighbourFrom, PerSecond: rate}, {At: o.NeighbourUntil}}
}

// Run runs the load once in mode, with a fresh broker and emulator.
func Run(ctx context.Context, o Options, mode Mode) (_ Result, err error) {
	o.setDefaults()
	dir, err := os.MkdirTemp("", "guestflow-bench-")
	if err != nil {
		return Result{}, err
	}
	defer func() {
		// A failed run keeps its worker logs for a post-mortem.
		if err != nil {
			err = fmt.Errorf("%w (worker logs kept in %s)", err, dir)
			return
		}
		os.RemoveAll(dir)
	}()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)

	ns, err := broker.Start(broker.Options{Port: -1, StoreDir: filepath.Join(dir, "js")})
	if err != nil {
		return Result{}, err
	}
	defer ns.Shutdown()
	sim, err := graphsim.New(graphsim.Options{
		WriteLimit: o.WriteLimit, TenantWriteLimit: o.TenantWriteLimit, InviteLimit: o.InviteLimit,
		ResourceUnitLimit: o.ResourceUnitLimit, MailLimit: o.MailLimit, Neighbour: o.neighbour(),
		SyncDelay: o.SyncDelay, Seats: 10 * o.N,
	})
	if err != nil {
		return Result{}, err
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		return Result{}, err
	}
	defer sim.Close()
	cfgPath, err := writeConfig(dir, sim, ns.ClientURL())
	if err != nil {
		return Result{}, err
	}

	nc, js, err := app.Connect(config.NATS{URL: ns.ClientURL()}, "guestflow-bench")
	if err != nil {
		return Result{}, err
	}
	defer nc.Close()
	if err := worker.EnsureStreams(ctx, js, worker.StreamOptions{}); err != nil {
		return Result{}, err
	}
	w := &watch{done: map[string]time.Time{}, progress: o.Progress, name: mode.Name}
	if err := w.subscribe(nc); err != nil {
		return Result{}, err
	}

	procs, err := startWorkers(o, mode, cfgPath, ns.ClientURL(), dir, stop)
	if err != nil {
		return Result{}, err
	}
	defer procs.kill()
	if err := waitForConsumers(ctx, js); err != nil {
		return Result{}, err
	}
	idle := procs.idle(ctx)

	fmt.Fprintf(o.Progress, "%s: publishing %d onboardings to %d worker processes (write budget %d/%s)\n",
		mode.Name, o.N, o.Replicas, o.WriteLimit.N, o.WriteLimit.Per)
	var byClass *classCounter
	if o.Breakdown {
		if byClass, err = countSubjects(nc); err != nil {
			return Result{}, err
		}
	}
	in0 := inMsgs(ns)
	t0 := time.Now()
	sim.RestartNeighbour()
	samples := sample(ctx, sim, t0, o.Trace, js)
	if err := publish(ctx, js, o.N, mode.Name); err != nil {
		return Result{}, err
	}
	last, err := w.wait(ctx, o.N, t0)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", mode.Name, err)
	}
	series := samples()
	in1 := inMsgs(ns)
	cpu, rss, err := procs.stop()
	if err != nil {
		return Result{}, err
	}

	st := sim.Stats()
	r := Result{
		Mode:      mode.Name,
		Onboarded: len(w.done),
		MakespanS: last.Sub(t0).Seconds(),
		Writes:    st.Writes,
		Calls:     st.Requests,
		Throttled: st.Throttled,
	}
	r.IdealS = float64(st.Writes) / o.budget()
	r.Ratio = r.MakespanS / r.IdealS
	if r.Calls > 0 {
		r.ThrottledShare = float64(r.Throttled) / float64(r.Calls)
	}
	r.DeadLetters, r.DeadLetterReasons = w.deadLetters()
	r.P50S, r.P99S = w.percentiles(t0)
	r.CPUMsPerOnboarding = float64(cpu.Milliseconds()) / float64(o.N)
	r.IdleCPUMsPerS = idle
	if r.Onboarded > 0 {
		r.WritesPerOnboarding = float64(r.Writes) / float64(r.Onboarded)
	}
	r.WritesFloor = writesFloor(o.N)
	r.NATSMsgsPerOnboarding = float64(in1-in0) / float64(o.N)
	r.MaxRSSMiB = float64(rss) / (1 << 20)
	r.StoreBytes, r.Keys = storage(ctx, ns, js)
	if byClass != nil {
		r.NATSMsgsBySubject = byClass.per(o.N)
	}
	r.CallsByRoute = map[string]float64{}
	for route, byStatus := range st.Calls {
		total := 0
		for _, n := range byStatus {
			total += n
		}
		r.CallsByRoute[route] = perOnboarding(total, o.N)
	}
	r.Scopes, r.FloorS, r.Binding = floors(st)
	if r.FloorS > 0 {
		r.FloorRatio = r.MakespanS / r.FloorS
	}
	if o.neighbour() != nil {
		r.NeighbourWrites = st.NeighbourWrites
		r.NeighbourBound = bound(series, o.NeighbourFrom, o.NeighbourUntil, perSecond(o.TenantWriteLimit))
		rec := 0.0
		if r.NeighbourBound {
			rec = recovery(series, o.NeighbourFrom, o.NeighbourUntil, last.Sub(t0))
		}
		r.RecoveryS = &rec
	}
	return round(r), nil
}

// floors are the emulator's limited scopes, each with its floor, and the
// largest floor with its scope.
func floors(st graphsim.Stats) (map[string]ScopeResult, float64, string) {
	out := map[string]ScopeResult{}
	var floor float64
	var binding string
	keys := make([]string, 0, len(st.Scopes))
	for k := range st.Scopes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		sc := st.Scopes[k]
		l, err := graphsim.ParseLimit(sc.Limit)
		if err != nil || l.Unlimited() {
			continue // unlimited, or a number at once (mailConcurrency)
		}
		spent := sc.Spent
		if k == "tenantWrite" {
			spent += st.NeighbourWrites
		}
		r := ScopeResult{Limit: sc.Limit, Spent: spent, Throttled: sc.Throttled}
		if spent > l.N {
			r.FloorS = math.Round(float64(spent)/perSecond(l)*1000) / 1000
		}
		if r.FloorS > 0 && r.FloorS >= floor { // a tie goes to write, the app's own, over tenantWrite
			floor, binding = r.FloorS, k
		}
		out[k] = r
	}
	return out, floor, binding
}

// point is guestflow's and the neighbour's writes so far, at a time since
// the publication.
type point struct {
	at               time.Duration
	writes, neighbor int
}

// sample records the emulator's write counters every 100 ms until ctx
// ends or the returned func is called, which returns them. With trace, it
// also writes the pacer's shared state there every quarter second.
func sample(ctx context.Context, sim *graphsim.Sim, t0 time.Time, trace io.Writer, js jetstream.JetStream) func() []point {
	var kv jetstream.KeyValue
	if trace != nil {
		kv, _ = js.KeyValue(ctx, throttle.Bucket)
	}
	var last graphsim.Stats
	n := 0
	var mu sync.Mutex
	var pts []point
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			st := sim.Stats()
			mu.Lock()
			pts = append(pts, point{at: time.Since(t0), writes: st.Scopes["write"].Admitted, neighbor: st.NeighbourWrites})
			mu.Unlock()
			if n++; trace != nil && n%5 == 1 {
				traceLine(ctx, trace, kv, time.Since(t0), st, last)
				last = st
			}
			select {
			case <-ctx.Done():
				return
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() []point {
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return pts
	}
}

// traceLine writes the pacer's rates and what each scope admitted and
// refused since the last line.
func traceLine(ctx context.Context, w io.Writer, kv jetstream.KeyValue, at time.Duration, st, last graphsim.Stats) {
	var b strings.Builder
	fmt.Fprintf(&b, "trace %6.2fs", at.Seconds())
	for _, k := range []string{"writes", "invitations", "ru", "mail"} {
		if kv == nil {
			break
		}
		e, err := kv.Get(ctx, "graph.pace."+k)
		if err != nil {
			continue
		}
		var v struct {
			Rate   float64 `json:"rate"`
			Steady bool    `json:"steady"`
			Max    float64 `json:"max"`
		}
		if json.Unmarshal(e.Value(), &v) == nil {
			fmt.Fprintf(&b, " %s=%.1f", k, v.Rate)
			if !v.Steady {
				b.WriteString("(slow)")
			}
			if v.Max > 0 {
				fmt.Fprintf(&b, "(max %.1f)", v.Max)
			}
		}
	}
	for _, k := range []string{"write", "tenantWrite", "invite", "ru", "mail", "mailConcurrency"} {
		d := st.Scopes[k].Admitted - last.Scopes[k].Admitted
		th := st.Scopes[k].Throttled - last.Scopes[k].Throttled
		if d != 0 || th != 0 {
			fmt.Fprintf(&b, " %s+%d", k, d)
			if th > 0 {
				fmt.Fprintf(&b, "/429×%d", th)
			}
		}
	}
	if d := st.NeighbourWrites - last.NeighbourWrites; d > 0 {
		fmt.Fprintf(&b, " neighbour+%d", d)
	}
	fmt.Fprintln(w, b.String())
}

// bound reports whether guestflow's and the neighbour's writes over a
// trailing second reached 90 % of the tenant's budget (per second) between
// from and until.
func bound(pts []point, from, until time.Duration, budget float64) bool {
	j := 0
	for _, p := range pts {
		if p.at < from+time.Second || p.at > until {
			continue
		}
		for j < len(pts) && pts[j].at < p.at-time.Second {
			j++
		}
		if j == 0 {
			continue
		}
		q := pts[j-1] // the last sample at or before a second ago
		if float64(p.writes+p.neighbor-q.writes-q.neighbor) >= 0.9*budget*(p.at-q.at).Seconds() {
			return true
		}
	}
	return false
}

// recovery is how long after until guestflow's writes over the trailing
// second first reach 90 % of their rate over the 5 seconds before from;
// -1 when they do not by end (or there is nothing to compare with).
func recovery(pts []point, from, until, end time.Duration) float64 {
	at := func(t time.Duration) (int, bool) { // writes at the last sample at or before t
		i, found := slices.BinarySearchFunc(pts, t, func(p point, t time.Duration) int { return cmp.Compare(p.at, t) })
		if !found {
			i--
		}
		if i < 0 {
			return 0, false
		}
		return pts[i].writes, true
	}
	lo := max(0, from-5*time.Second)
	w0, ok0 := at(lo)
	w1, ok1 := at(from)
	if !ok0 || !ok1 || from <= lo || w1 <= w0 {
		return -1
	}
	before := float64(w1-w0) / (from - lo).Seconds()
	for _, p := range pts {
		if p.at < until || p.at > end {
			continue
		}
		w, _ := at(p.at - time.Second)
		if float64(p.writes-w) >= 0.9*before {
			return math.Round((p.at-until).Seconds()*1000) / 1000
		}
	}
	return -1
}

// Targets are what a run of guestflow should meet: makespan within 5 %
// of the binding scope's floor, at most 1 % of calls throttled, no dead
// letters; with a neighbour, at most 2 % throttled, no dead letters, and
// the budget it freed used again within 5 seconds.
const (
	TargetFloorRatio     = 1.05
	TargetThrottled      = 0.01
	TargetThrottledShare = 0.02 // with a neighbour
	TargetRecoveryS      = 5.0
)

// Missed lists the targets r misses, empty when it meets them all.
func (r Result) Missed() []string {
	var out []string
	if r.DeadLetters > 0 {
		out = append(out, fmt.Sprintf("%d dead letters", r.DeadLetters))
	}
	if r.RecoveryS != nil {
		if r.ThrottledShare > TargetThrottledShare {
			out = append(out, fmt.Sprintf("%.1f %% throttled, above %.0f %%", 100*r.ThrottledShare, 100*TargetThrottledShare))
		}
		if *r.RecoveryS < 0 || *r.RecoveryS > TargetRecoveryS {
			out = append(out, fmt.Sprintf("recovery %.1fs, above %.0fs", *r.RecoveryS, TargetRecoveryS))
		}
		return out
	}
	if r.FloorRatio > TargetFloorRatio {
		out = append(out, fmt.Sprintf("makespan %.3f× the floor, above %.2f×", r.FloorRatio, TargetFloorRatio))
	}
	if r.ThrottledShare > TargetThrottled {
		out = append(out, fmt.Sprintf("%.1f %% throttled, above %.0f %%", 100*r.ThrottledShare, 100*TargetThrottled))
	}
	return out
}

func round(r Result) Result {
	f := func(v float64) float64 { return math.Round(v*1000) / 1000 }
	r.MakespanS, r.IdealS, r.Ratio = f(r.MakespanS), f(r.IdealS), f(r.Ratio)
	r.ThrottledShare, r.P50S, r.P99S, r.CPUMsPerOnboarding = f(r.ThrottledShare), f(r.P50S), f(r.P99S), f(r.CPUMsPerOnboarding)
	r.WritesPerOnboarding, r.WritesFloor = f(r.WritesPerOnboarding), f(r.WritesFloor)
	r.FloorS, r.FloorRatio = f(r.FloorS), f(r.FloorRatio)
	return r
}

// benchInstances are the instances publish spreads onboardings over, in
// turn; sales is the one with a security group.
var benchInstances = []string{"sales", "service", "legacy"}

// writesFloor is the average of the fewest identity writes the n
// onboardings publish sends need: invitation, profile and license, and the
// group add for sales's.
func writesFloor(n int) float64 {
	if n <= 0 {
		return 0
	}
	total := 0
	for i := range n {
		total += 3
		if benchInstances[i%len(benchInstances)] == "sales" {
			total++
		}
	}
	return float64(total) / float64(n)
}

// writeConfig writes what `graphsim --print-config` writes, pointed at the
// run's broker.
func writeConfig(dir string, sim *graphsim.Sim, natsURL string) (string, error) {
	ca := filepath.Join(dir, "graphsim-ca.pem")
	if err := os.WriteFile(ca, sim.CAPEM(), 0o644); err != nil {
		return "", err
	}
	cfg := sim.Config()
	cfg.Tenant.CAFile = ca
	cfg.NATS.URL = natsURL
	b, err := cfg.Marshal()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "guestflow.yaml")
	return p, os.WriteFile(p, b, 0o644)
}

// waitForConsumers waits until the workers have created their consumers,
// so the clock starts with everyone ready.
func waitForConsumers(ctx context.Context, js jetstream.JetStream) error {
	for _, name := range app.StepNames {
		for {
			if _, err := js.Consumer(ctx, worker.Stream, name); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("workers did not start: %w", context.Cause(ctx))
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// publish sends n joined events at once, spread over the seeded instances.
func publish(ctx context.Context, js jetstream.JetStream, n int, run string) error {
	instances := benchInstances
	var futures []jetstream.PubAckFuture
	for i := range n {
		j := events.Joined{
			Email: fmt.Sprintf("guest%04d@%s.example", i, run), GivenName: "Guest", Surname: strconv.Itoa(i),
			UsageLocation: "PT", Instance: instances[i%len(instances)],
		}
		ev, err := events.NewJoined(fmt.Sprintf("%s-%04d", run, i), "guestflow/bench", j, time.Now())
		if err != nil {
			return err
		}
		header, body, err := events.Encode(ev)
		if err != nil {
			return err
		}
		f, err := js.PublishMsgAsync(&nats.Msg{Subject: events.SubjectJoined, Header: nats.Header(header), Data: body},
			jetstream.WithMsgID(ev.ID()))
		if err != nil {
			return err
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// watch records when each onboarding finished and counts dead letters.
type watch struct {
	mu      sync.Mutex
	done    map[string]time.Time
	dead    int
	reasons map[string]int
	last    time.Time
	// progress gets a line now and then, and the first dead letter of
	// each step and reason, so a run that dead-letters says why; name is
	// the run's.
	progress io.Writer
	name     string
}

func (w *watch) subscribe(nc *nats.Conn) error {
	if _, err := nc.Subscribe(events.SubjectOnboarded, func(m *nats.Msg) {
		ev, err := events.Decode(m.Subject, m.Header, m.Data)
		if err != nil {
			return
		}
		now := time.Now()
		w.mu.Lock()
		defer w.mu.Unlock()
		if _, seen := w.done[events.OnboardingID(ev)]; !seen {
			w.done[events.OnboardingID(ev)] = now
			w.last = now
		}
	}); err != nil {
		return err
	}
	_, err := nc.Subscribe(worker.DLQSubjects, func(m *nats.Msg) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.dead++
		if w.reasons == nil {
			w.reasons = map[string]int{}
		}
		key := m.Header.Get(worker.HeaderStep) + "/" + m.Header.Get(worker.HeaderReason)
		if w.reasons[key]++; w.reasons[key] == 1 {
			fmt.Fprintf(w.progress, "%s: first dead letter %s: %s\n", w.name, key, m.Header.Get(worker.HeaderError))
		}
	})
	return err
}

// wait returns when every onboarding has finished or been dead-lettered.
func (w *watch) wait(ctx context.Context, n int, t0 time.Time) (time.Time, error) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		w.mu.Lock()
		done, dead, last := len(w.done), w.dead, w.last
		w.mu.Unlock()
		if done+dead >= n {
			return last, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%d of %d onboarded, %d dead letters when the run ended: %w", done, n, dead, context.Cause(ctx))
		case <-tick.C:
			fmt.Fprintf(w.progress, "%s: %5.1fs  %d/%d onboarded, %d dead letters\n", w.name, time.Since(t0).Seconds(), done, n, dead)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (w *watch) deadLetters() (int, map[string]int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dead, w.reasons
}

// percentiles of the time from publication to onboarded.
func (w *watch) percentiles(t0 time.Time) (p50, p99 float64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var d []float64
	for _, t := range w.done {
		d = append(d, t.Sub(t0).Seconds())
	}
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	at := func(q float64) float64 { return d[min(len(d)-1, int(math.Ceil(q*float64(len(d))))-1)] }
	return at(0.50), at(0.99)
}

// procs are the worker processes of a run.
type procs struct {
	cmds []*exec.Cmd
	// done closes when the process has exited; its state is then set.
	done     []chan struct{}
	stopping atomic.Bool
}

// startWorkers starts the worker processes. A worker that exits before the
// run stops it ends the run: cancel gets an error naming the worker and the
// end of its log, so a worker refusing its flags is not a ten-minute wait.
func startWorkers(o Options, mode Mode, cfg, natsURL, dir string, cancel context.CancelCauseFunc) (*procs, error) {
	p := &procs{}
	for i := range o.Replicas {
		args := append([]string{"worker", "all", "--config", cfg, "--nats", natsURL,
			"--concurrency", strconv.Itoa(o.Concurrency)}, mode.Args...)
		if o.ProfileDir != "" {
			args = append(args, "--cpu-profile", filepath.Join(o.ProfileDir, fmt.Sprintf("%s-worker-%d.pprof", mode.Name, i)))
		}
		cmd := exec.Command(o.Exe, args...)
		cmd.Env = append(os.Environ(), "AZURE_CLIENT_ID="+graphsim.DefaultClientID, "AZURE_CLIENT_SECRET="+graphsim.DefaultClientSecret)
		logPath := filepath.Join(dir, fmt.Sprintf("%s-worker-%d.log", mode.Name, i))
		logf, err := os.Create(logPath)
		if err != nil {
			p.kill()
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			p.kill()
			return nil, fmt.Errorf("starting %s: %w", o.Exe, err)
		}
		done := make(chan struct{})
		p.cmds, p.done = append(p.cmds, cmd), append(p.done, done)
		go func() {
			err := cmd.Wait()
			logf.Close()
			close(done)
			if !p.stopping.Load() {
				cancel(fmt.Errorf("%s worker %d exited (%v): %s", mode.Name, i, err, lastLines(logPath, 5)))
			}
		}()
	}
	return p, nil
}

// lastLines is the end of a log, for an error message.
func lastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// stop ends the workers gracefully and returns the CPU time they used and
// the largest resident set of any, in bytes.
func (p *procs) stop() (time.Duration, int64, error) {
	p.stopping.Store(true)
	var cpu time.Duration
	var rss int64
	for _, c := range p.cmds {
		_ = c.Process.Signal(os.Interrupt)
	}
	for i, c := range p.cmds {
		select {
		case <-p.done[i]:
		case <-time.After(30 * time.Second):
			return 0, 0, fmt.Errorf("worker %d did not exit within 30s of an interrupt", c.Process.Pid)
		}
		cpu += c.ProcessState.UserTime() + c.ProcessState.SystemTime()
		if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = max(rss, ru.Maxrss*1024) // kilobytes on Linux
		}
	}
	p.cmds, p.done = nil, nil
	return cpu, rss, nil
}

// IdleMeasure is how long the workers are watched doing nothing.
const IdleMeasure = 3 * time.Second

// idle measures the CPU milliseconds per second the workers spend with
// nothing to do, from /proc; 0 where there is none.
func (p *procs) idle(ctx context.Context) float64 {
	cpu := func() (total time.Duration, ok bool) {
		for _, c := range p.cmds {
			d, err := procCPU(c.Process.Pid)
			if err != nil {
				return 0, false
			}
			total += d
		}
		return total, true
	}
	// The workers settle first: their start-up (TLS, buckets) is not
	// idling.
	select {
	case <-ctx.Done():
		return 0
	case <-time.After(time.Second):
	}
	a, ok := cpu()
	if !ok {
		return 0
	}
	select {
	case <-ctx.Done():
		return 0
	case <-time.After(IdleMeasure):
	}
	b, ok := cpu()
	if !ok {
		return 0
	}
	return float64((b - a).Milliseconds()) / IdleMeasure.Seconds()
}

// procCPU is a process's user and system time so far, from
// /proc/<pid>/stat (fields 14 and 15, in clock ticks of 1/100 s).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields after it do not.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// classCounter counts messages by subjectClass.
type classCounter struct {
	sub *nats.Subscription
	mu  sync.Mutex
	n   map[string]int
}

// countSubjects counts every message published from now on (replies to
// requests included, as "_INBOX").
func countSubjects(nc *nats.Conn) (*classCounter, error) {
	c := &classCounter{n: map[string]int{}}
	sub, err := nc.Subscribe(">", func(m *nats.Msg) {
		k := subjectClass(m.Subject, m.Reply)
		c.mu.Lock()
		c.n[k]++
		c.mu.Unlock()
	})
	if err != nil {
		return nil, err
	}
	c.sub = sub
	return c, nil
}

func (c *classCounter) per(n int) map[string]float64 {
	_ = c.sub.Unsubscribe()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]float64, len(c.n))
	for k, v := range c.n {
		out[k] = perOnboarding(v, n)
	}
	return out
}

// perOnboarding is count over n onboardings, to two decimals.
func perOnboarding(count, n int) float64 {
	return math.Round(float64(count)/float64(n)*100) / 100
}

// subjectClass names what a message is for, without its ids, from its
// subject and reply subject: an event's subject; "<bucket> put <key's
// first tokens>" for a key-value write; "<bucket> get <key's first
// tokens>" for a direct get; the JetStream API call; "ack" with the step;
// "_INBOX" for a reply. A consumer's delivery (its reply is an ack
// subject) keeps its message's subject: it is "<subject> delivered" for an
// event, and "<bucket> watch <key's first tokens>" for a key-value write
// brought to a watcher.
func subjectClass(subject, reply string) string {
	t := strings.Split(subject, ".")
	if strings.HasPrefix(reply, "$JS.ACK.") && !strings.HasPrefix(subject, "$JS.") {
		if t[0] == "$KV" && len(t) > 2 {
			return kvClass(t[1], "watch", t[2:])
		}
		return subject + " delivered"
	}
	first := func(ts []string, n int) string { return strings.Join(ts[:min(n, len(ts))], ".") }
	switch {
	case strings.HasPrefix(subject, "_INBOX"):
		return "_INBOX"
	case t[0] == "$KV" && len(t) > 2:
		return kvClass(t[1], "put", t[2:])
	case len(t) > 6 && t[1] == "API" && t[2] == "DIRECT" && t[5] == "$KV":
		return kvClass(t[6], "get", t[7:])
	case len(t) > 3 && t[0] == "$JS" && t[1] == "API":
		return first(t, 4)
	case len(t) > 3 && t[0] == "$JS" && t[1] == "ACK":
		return "ack " + t[3]
	case t[0] == "$JS":
		return first(t, 3)
	}
	return subject
}

// kvClass names an operation on a bucket's key by the key's first
// token, or three of the throttle bucket's (graph.pace.writes, …).
func kvClass(bucket, op string, key []string) string {
	depth := 1
	if bucket == throttle.Bucket {
		depth = 3
	}
	return bucket + " " + op + " " + strings.Join(key[:min(depth, len(key))], ".")
}

// inMsgs is how many messages the broker has received from clients.
func inMsgs(ns *server.Server) int64 {
	v, err := ns.Varz(nil)
	if err != nil {
		return 0
	}
	return v.InMsgs
}

// storage is what JetStream stores, and the keys of each bucket.
func storage(ctx context.Context, ns *server.Server, js jetstream.JetStream) (uint64, map[string]int) {
	var bytes uint64
	if jsz, err := ns.Jsz(nil); err == nil {
		bytes = jsz.Store
	}
	keys := map[string]int{}
	for name := range js.KeyValueStoreNames(ctx).Name() {
		kv, err := js.KeyValue(ctx, name)
		if err != nil {
			continue
		}
		if st, err := kv.Status(ctx); err == nil {
			keys[name] = int(st.Values())
		}
	}
	return bytes, keys
}

func (p *procs) kill() {
	p.stopping.Store(true)
	for i, c := range p.cmds {
		_ = c.Process.Kill()
		<-p.done[i]
	}
}
