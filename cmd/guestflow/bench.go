package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/guestflow/guestflow/internal/bench"
	"github.com/guestflow/guestflow/internal/graphsim"
)

// benchFlags are the emulator budgets bench sets, as graphsim's flags
// spell them.
type benchFlags struct {
	writeLimit, tenantWriteLimit, inviteLimit, ruLimit, mailLimit string
}

func (f benchFlags) apply(o *bench.Options) error {
	for _, l := range []struct {
		name, v  string
		to       *graphsim.Limit
		required bool
	}{
		{"--write-limit", f.writeLimit, &o.WriteLimit, true},
		{"--tenant-write-limit", f.tenantWriteLimit, &o.TenantWriteLimit, false},
		{"--invite-limit", f.inviteLimit, &o.InviteLimit, false},
		{"--ru-limit", f.ruLimit, &o.ResourceUnitLimit, false},
		{"--mail-limit", f.mailLimit, &o.MailLimit, false},
	} {
		v, err := graphsim.ParseLimit(l.v)
		if err != nil || l.required && v.Unlimited() {
			return fmt.Errorf("%s %q: want N/DURATION such as 100/1s", l.name, l.v)
		}
		*l.to = v
	}
	return nil
}

// Matrix defaults: the write budgets, and Microsoft's own for the
// other scopes (the smallest tenant's resource units).
var (
	matrixBudgets = []string{"10/1s", "50/1s", "200/1s"}
	matrixModes   = []string{"guestflow", "static", "baseline"}
)

func newBench(g *globals) *cobra.Command {
	var (
		o         bench.Options
		limits    benchFlags
		baseline  bool
		writeRate float64
		matrix    bool
		budgets   []string
		modes     []string
		share     float64
		trace     bool
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure guestflow against a throttled emulator, beside an SDK-retry baseline",
		Long: `Publish N onboardings at once against the emulator with scaled Graph budgets
and work them off with --replicas worker processes (each runs all four steps, so every
step has that many replicas; they share nothing but NATS and the emulator). The same
load runs twice: guestflow as shipped (the adaptive pacer, told nothing of the budgets,
429 pauses shared through NATS, one retry layer) and a baseline (msgraph-sdk-go's own
retry, no coordination). Prints one JSON object:

  makespan_s             first publish to last onboarded
  ideal_s                successful identity writes / write budget
  ratio                  makespan_s / ideal_s
  floor_s, binding_scope the largest of each limited scope's units spent / its rate
  floor_ratio            makespan_s / floor_s
  calls, throttled       API calls the emulator answered, and its budget 429s
  throttled_share        throttled / calls
  dead_letters           inputs that ended in the dead-letter stream
  p50_s, p99_s           time from publication to onboarded
  cpu_ms_per_onboarding  CPU of the worker processes / N
  writes_per_onboarding  successful identity writes / onboarded

--matrix runs every --budgets write budget (tenant-wide writes the same, invitations
150/5s, resource units 3500/10s, mail 10000/10m and 4 at once: Microsoft's), without
and with a neighbour app spending --neighbour-share of the tenant's writes from 30 %
to 60 % of the write floor, in every --modes mode (guestflow; static: the fixed-rate
pacer of old, told 95 % of the write and invitation budgets; baseline), and prints one
JSON object a line per run, with the targets it missed (missed; empty when none:
makespan within 5 % of the floor and at most 1 % of calls throttled, or with the
neighbour at most 2 % throttled and its writes used again within 5 s, recovery_s;
no dead letters ever).

Progress goes to stderr.`,
		Example: `  go run ./cmd/guestflow bench
  guestflow bench --n 300 --write-limit 50/1s --baseline=false
  guestflow bench --matrix --n 400`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.Exe, err = os.Executable(); err != nil {
				return err
			}
			o.Progress = g.output(cmd)
			if trace {
				o.Trace = o.Progress
			}
			if o.ProfileDir != "" {
				if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
					return fmt.Errorf("--profile: %w", err)
				}
				// The benchmark's own process too: the broker and the
				// emulator run in it.
				self := opsFlags{cpuProfile: filepath.Join(o.ProfileDir, "bench.pprof")}
				stop, err := self.profile()
				if err != nil {
					return err
				}
				defer stop()
			}
			if matrix {
				return runMatrix(cmd, o, budgets, modes, share)
			}
			if err := limits.apply(&o); err != nil {
				return err
			}
			out := map[string]any{"setup": map[string]any{
				"n": o.N, "replicas": o.Replicas, "write_limit": limits.writeLimit,
				"tenant_write_limit": limits.tenantWriteLimit, "invite_limit": limits.inviteLimit,
				"ru_limit": limits.ruLimit, "mail_limit": limits.mailLimit, "write_rate": writeRate,
				"sync_delay": o.SyncDelay.String(), "concurrency": o.Concurrency,
				"cpus": runtime.NumCPU(), "go": runtime.Version(), "at": time.Now().UTC().Format(time.RFC3339),
			}}
			mode := bench.Guestflow
			if writeRate > 0 {
				mode.Args = []string{"--write-rate", fmt.Sprint(writeRate)}
			}
			r, err := bench.Run(cmd.Context(), o, mode)
			if err != nil {
				return err
			}
			out["guestflow"] = r
			if baseline {
				b, err := bench.Run(cmd.Context(), o, bench.Baseline)
				if err != nil {
					return err
				}
				out["baseline"] = b
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			if err := enc.Encode(out); err != nil {
				return err
			}
			// The baseline makes no promise; guestflow does.
			return r.Check(o.N)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.N, "n", 1000, "onboardings, all published at once")
	fl.IntVar(&o.Replicas, "replicas", 3, "worker processes, each running every step")
	fl.StringVar(&limits.writeLimit, "write-limit", "100/1s", "the emulator's Graph identity-write budget per app, N/DURATION")
	fl.StringVar(&limits.tenantWriteLimit, "tenant-write-limit", "", "the emulator's identity-write budget per tenant (default unlimited)")
	fl.StringVar(&limits.inviteLimit, "invite-limit", "", "the emulator's invitation budget (default unlimited)")
	fl.StringVar(&limits.ruLimit, "ru-limit", "", "the emulator's resource-unit budget (default unlimited)")
	fl.StringVar(&limits.mailLimit, "mail-limit", "", "the emulator's sendMail budget, with 4 at once (default unlimited)")
	fl.Float64Var(&writeRate, "write-rate", 0, "a ceiling for guestflow's write pacer (default none: guestflow is told nothing of the budget)")
	fl.DurationVar(&o.SyncDelay, "sync-delay", 200*time.Millisecond, "the emulator's Dataverse sync delay")
	fl.IntVar(&o.Concurrency, "concurrency", 16, "messages in flight per worker")
	fl.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "give up on a run after this long")
	fl.BoolVar(&baseline, "baseline", true, "also run the SDK-retry baseline")
	fl.BoolVar(&matrix, "matrix", false, "run the matrix of --budgets, neighbour off and on, and --modes, one JSON object a line")
	fl.StringSliceVar(&budgets, "budgets", matrixBudgets, "--matrix: the write budgets")
	fl.StringSliceVar(&modes, "modes", matrixModes, "--matrix: the modes, of guestflow, static and baseline")
	fl.Float64Var(&share, "neighbour-share", 0.3, "--matrix: the share of the tenant's write budget the neighbour takes")
	fl.BoolVar(&o.Breakdown, "nats-breakdown", false, "also count the messages sent to the broker by kind of subject, per onboarding (nats_msgs_by_subject)")
	fl.StringVar(&o.ProfileDir, "profile", "", "write each worker process's CPU profile to this directory (<mode>-worker-<i>.pprof; see docs/profiling.md)")
	fl.BoolVar(&trace, "trace", false, "write the shared pacer's rates and the emulator's counters to stderr every quarter second")
	return cmd
}

// matrixLine is one line of --matrix's output.
type matrixLine struct {
	WriteLimit string `json:"write_limit"`
	Neighbour  bool   `json:"neighbour"`
	bench.Result
	Missed []string `json:"missed"`
}

// runMatrix runs every budget, neighbour off and on, in every mode, and
// prints a line per run as it ends. It fails when guestflow breaks its
// own promises (Result.Check) anywhere, after the whole matrix; missed
// targets are reported, not failed, so that the numbers are all there.
func runMatrix(cmd *cobra.Command, base bench.Options, budgets, modes []string, share float64) error {
	for _, m := range modes {
		if m != "guestflow" && m != "static" && m != "baseline" {
			return fmt.Errorf("--modes %q: want guestflow, static or baseline", m)
		}
	}
	enc := json.NewEncoder(cmd.OutOrStdout())
	var errs []error
	for _, b := range budgets {
		for _, neighbour := range []bool{false, true} {
			o := base
			f := benchFlags{writeLimit: b, tenantWriteLimit: b, inviteLimit: graphsim.MicrosoftInviteLimit,
				ruLimit: graphsim.MicrosoftResourceUnitLimitS, mailLimit: graphsim.MicrosoftMailLimit}
			if err := f.apply(&o); err != nil {
				return err
			}
			if neighbour {
				// The floor the writes or the invitations set, whichever is
				// longer.
				floor := max(float64(o.N)*10/3/(float64(o.WriteLimit.N)/o.WriteLimit.Per.Seconds()),
					float64(o.N)/(float64(o.InviteLimit.N)/o.InviteLimit.Per.Seconds()))
				o.NeighbourShare = share
				o.NeighbourFrom = time.Duration(0.3 * floor * float64(time.Second))
				o.NeighbourUntil = time.Duration(0.6 * floor * float64(time.Second))
			}
			for _, m := range modes {
				mode := bench.Guestflow
				switch m {
				case "static":
					mode = bench.StaticFor(o)
				case "baseline":
					mode = bench.Baseline
				}
				r, err := bench.Run(cmd.Context(), o, mode)
				if err != nil {
					return fmt.Errorf("write budget %s, neighbour %v, %s: %w", b, neighbour, m, err)
				}
				line := matrixLine{WriteLimit: b, Neighbour: neighbour, Result: r, Missed: r.Missed()}
				if line.Missed == nil {
					line.Missed = []string{}
				}
				if err := enc.Encode(line); err != nil {
					return err
				}
				if m == "guestflow" {
					if err := r.Check(o.N); err != nil {
						errs = append(errs, fmt.Errorf("write budget %s, neighbour %v: %w", b, neighbour, err))
					}
				}
				fmt.Fprintf(base.Progress, "%s, write budget %s, neighbour %v: makespan %.2fs, floor %.2fs (%s), ratio %.3f, %.2f %% throttled, %d dead letters; missed: %s\n",
					m, b, neighbour, r.MakespanS, r.FloorS, r.Binding, r.FloorRatio, 100*r.ThrottledShare, r.DeadLetters, strings.Join(line.Missed, "; "))
			}
		}
	}
	return errors.Join(errs...)
}
