package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/guestflow/guestflow/internal/bench"
	"github.com/guestflow/guestflow/internal/graphsim"
)

func newBench(g *globals) *cobra.Command {
	var (
		o          bench.Options
		writeLimit string
		baseline   bool
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure guestflow against a throttled emulator, beside an SDK-retry baseline",
		Long: `Publish N onboardings at once against the emulator with a scaled Graph write budget
and work them off with --replicas worker processes (each runs all four steps, so every
step has that many replicas; they share nothing but NATS and the emulator). The same
load runs twice: guestflow as shipped (writes paced to a shared rate through NATS,
429 pauses shared, one retry layer) and a baseline (msgraph-sdk-go's own retry, no
coordination). Prints one JSON object:

  makespan_s             first publish to last onboarded
  ideal_s                successful identity writes / write budget
  ratio                  makespan_s / ideal_s
  calls, throttled       API calls the emulator answered, and its budget 429s
  throttled_share        throttled / calls
  dead_letters           inputs that ended in the dead-letter stream
  p50_s, p99_s           time from publication to onboarded
  cpu_ms_per_onboarding  CPU of the worker processes / N

Progress goes to stderr.`,
		Example: `  go run ./cmd/guestflow bench
  guestflow bench --n 300 --write-limit 50/1s --baseline=false`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := graphsim.ParseLimit(writeLimit)
			if err != nil || l.Unlimited() {
				return fmt.Errorf("--write-limit %q: want N/DURATION such as 100/1s", writeLimit)
			}
			o.WriteLimit = l
			if o.Exe, err = os.Executable(); err != nil {
				return err
			}
			o.Progress = g.output(cmd)
			if o.WriteRate <= 0 {
				o.WriteRate = 0.95 * float64(l.N) / l.Per.Seconds()
			}
			out := map[string]any{"setup": map[string]any{
				"n": o.N, "replicas": o.Replicas, "write_limit": writeLimit, "write_rate": o.WriteRate,
				"sync_delay": o.SyncDelay.String(), "concurrency": o.Concurrency,
				"cpus": runtime.NumCPU(), "go": runtime.Version(), "at": time.Now().UTC().Format(time.RFC3339),
			}}
			r, err := bench.Run(cmd.Context(), o, bench.Guestflow(o.WriteRate))
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
	fl.StringVar(&writeLimit, "write-limit", "100/1s", "the emulator's Graph identity-write budget, N/DURATION")
	fl.Float64Var(&o.WriteRate, "write-rate", 0, "guestflow's shared write rate per second (default 95% of --write-limit)")
	fl.DurationVar(&o.SyncDelay, "sync-delay", 200*time.Millisecond, "the emulator's Dataverse sync delay")
	fl.IntVar(&o.Concurrency, "concurrency", 16, "messages in flight per worker")
	fl.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "give up on a run after this long")
	fl.BoolVar(&baseline, "baseline", true, "also run the SDK-retry baseline")
	return cmd
}
