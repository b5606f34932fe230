package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/guestflow/guestflow/internal/app"
	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/ops"
	"github.com/guestflow/guestflow/internal/throttle"
	"github.com/guestflow/guestflow/internal/worker"
)

// workerFlags tune the runtime of `worker` and `dev`.
type workerFlags struct {
	nats         natsFlag
	concurrency  int
	maxFailures  int
	ackWait      time.Duration
	stepTimeout  time.Duration
	drainTimeout time.Duration
	syncDeadline time.Duration
	throttleWait time.Duration
	backoffMin   time.Duration
	backoffMax   time.Duration
	writeRate    float64
	inviteRate   float64
	pacer        string
	coordinate   bool
	sdkRetry     bool
	// ops is the ops server of the process (registered by each command,
	// with its own default address).
	ops opsFlags
}

func (f *workerFlags) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&f.concurrency, "concurrency", 16, "messages one worker handles at once")
	cmd.Flags().IntVar(&f.maxFailures, "max-failures", worker.DefaultMaxFailures,
		"failed attempts a retryable failure gets before it is dead-lettered as attempts_exhausted (waits for budget and inputs handed back on shutdown do not count)")
	// --max-attempts was the flag's first name. Attempts are deliveries
	// everywhere else (Guestflow-Attempts, status, dlq list), and the flag
	// never counted those; the old name stays, on the same variable, so
	// that existing deployments keep working. It is hidden rather than
	// marked deprecated: pflag would print its notice on stderr as plain
	// text whatever --log-format says, so deprecations logs it instead.
	cmd.Flags().IntVar(&f.maxFailures, "max-attempts", worker.DefaultMaxFailures, "deprecated: use --max-failures")
	_ = cmd.Flags().MarkHidden("max-attempts")
	cmd.Flags().DurationVar(&f.ackWait, "ack-wait", worker.DefaultAckWait, "how long the broker waits for an ack before redelivering")
	cmd.Flags().DurationVar(&f.stepTimeout, "step-timeout", worker.DefaultStepTimeout,
		"how long one call of a step may take; a step still running then is abandoned and the delivery is a failed attempt (may exceed --ack-wait: in-progress acks keep the message meanwhile)")
	cmd.Flags().DurationVar(&f.drainTimeout, "drain-timeout", worker.DefaultDrainTimeout,
		"on SIGTERM or Ctrl-C, how long the steps in flight may finish; the inputs of those still running are then handed back to the broker for another worker (keep it below the pod's terminationGracePeriodSeconds)")
	cmd.Flags().DurationVar(&f.syncDeadline, "sync-deadline", 15*time.Minute, "how long the role step waits for the Dataverse user sync")
	cmd.Flags().DurationVar(&f.throttleWait, "throttle-deadline", worker.DefaultThrottleDeadline, "how long an input may wait for Graph's budget (429s are not failed attempts)")
	cmd.Flags().DurationVar(&f.backoffMin, "backoff-initial", worker.DefaultBackoffInitial,
		"delay before the first retry when the service gave no Retry-After; doubled per failed attempt, with ±50% jitter")
	cmd.Flags().DurationVar(&f.backoffMax, "backoff-max", worker.DefaultBackoffMax, "longest delay between retries without Retry-After")
	cmd.Flags().Float64Var(&f.writeRate, "write-rate", 0,
		"most Graph identity writes per second for the whole tenant; the shared pacer finds the rate below it from Graph's answers (0: no ceiling). With --pacer static, the rate itself (0: not paced)")
	cmd.Flags().Float64Var(&f.inviteRate, "invite-rate", 0,
		"most invitations per second for the whole tenant, as --write-rate (0: 98% of Microsoft's 150 per 5 s, the tenant's for all apps; with --pacer static, 0: not paced)")
	cmd.Flags().StringVar(&f.pacer, "pacer", "adaptive",
		"adaptive: find each Graph budget's rate from Graph's throttling headers; static: pace writes and invitations at exactly --write-rate and --invite-rate, as guestflow once did")
	cmd.Flags().BoolVar(&f.coordinate, "coordinate", true,
		"share the Graph budget and 429 pauses with the other workers through NATS; false leaves each worker on its own")
	cmd.Flags().BoolVar(&f.sdkRetry, "sdk-retry", false, "let msgraph-sdk-go retry by itself as well (for comparisons only: retries multiply)")
	_ = cmd.Flags().MarkHidden("sdk-retry")
}

// deprecations logs a warning for each deprecated flag that was given.
func (f *workerFlags) deprecations(fs *pflag.FlagSet, log *slog.Logger) {
	if fs.Changed("max-attempts") {
		log.Warn("Flag --max-attempts has been deprecated, use --max-failures (the same limit, on failed attempts; Guestflow-Attempts counts deliveries)")
	}
}

// check rejects settings that would make the workers misbehave rather than
// fail: no failures allowed, no concurrency, an ack wait that redelivers at
// once, a step or a drain given no time.
//
// --step-timeout and --drain-timeout are not bounded by --ack-wait: while a
// step runs, the worker sends in-progress acks every third of AckWait, and
// goes on sending them during the drain, so the broker keeps the message
// for as long as either takes. (Nor could they be: the worker works to the
// shared consumer's AckWait, which may not be --ack-wait.)
func (f *workerFlags) check() error {
	switch {
	case f.concurrency < 1:
		return fmt.Errorf("--concurrency must be at least 1, not %d", f.concurrency)
	case f.maxFailures < 1:
		return fmt.Errorf("--max-failures must be at least 1, not %d", f.maxFailures)
	case f.ackWait < time.Second:
		return fmt.Errorf("--ack-wait must be at least 1s, not %s", f.ackWait)
	case f.stepTimeout <= 0:
		return fmt.Errorf("--step-timeout must be more than 0, not %s", f.stepTimeout)
	case f.drainTimeout <= 0:
		return fmt.Errorf("--drain-timeout must be more than 0, not %s", f.drainTimeout)
	case f.backoffMin <= 0 || f.backoffMax < f.backoffMin:
		return fmt.Errorf("--backoff-initial (%s) must be more than 0 and at most --backoff-max (%s)", f.backoffMin, f.backoffMax)
	case f.syncDeadline <= 0 || f.throttleWait <= 0:
		return fmt.Errorf("--sync-deadline (%s) and --throttle-deadline (%s) must be more than 0", f.syncDeadline, f.throttleWait)
	case f.writeRate < 0 || f.inviteRate < 0:
		return fmt.Errorf("--write-rate (%g) and --invite-rate (%g) must be 0 (no ceiling) or more", f.writeRate, f.inviteRate)
	case f.pacer != "adaptive" && f.pacer != "static":
		return fmt.Errorf("--pacer %q: want adaptive or static", f.pacer)
	}
	return nil
}

// stepOptions are the step settings the flags give.
func (f *workerFlags) stepOptions() app.StepOptions {
	so := app.StepOptions{SyncDeadline: f.syncDeadline, SDKRetry: f.sdkRetry}
	if f.coordinate {
		so.Throttle = &throttle.Options{WriteRate: f.writeRate, InviteRate: f.inviteRate, Static: f.pacer == "static"}
	}
	return so
}

func (f *workerFlags) options(g *globals) worker.Options {
	return worker.Options{
		Concurrency: f.concurrency, MaxFailures: f.maxFailures, AckWait: f.ackWait, Logger: g.logger(),
		StepTimeout: f.stepTimeout, DrainTimeout: f.drainTimeout,
		ThrottleDeadline: f.throttleWait, Backoff: worker.Backoff(f.backoffMin, f.backoffMax),
	}
}

func newWorker(g *globals) *cobra.Command {
	f := &workerFlags{}
	cmd := &cobra.Command{
		Use:   "worker <invite|license|role|notify|all>...",
		Short: "Run step workers against NATS and Microsoft Graph / Dataverse",
		Long: `Run one or more step workers. Each consumes its event type from the GUESTFLOW stream
with a durable consumer named after the step, calls Graph or Dataverse, publishes the
next event and acks. Run as many replicas as you like: they share the consumer.
On SIGTERM or Ctrl-C a worker stops pulling, lets the steps in flight finish for
--drain-timeout and hands the inputs of the rest back to the broker, which
redelivers them to another replica at once; a second signal exits at once.

Credentials come from azidentity: AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET,
workload identity or managed identity. Endpoints and instances come from --config.`,
		Example: `  guestflow graphsim --print-config dev.yaml &
  AZURE_CLIENT_ID=guestflow-dev AZURE_CLIENT_SECRET=guestflow-dev-secret \
    guestflow worker all --config dev.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			f.deprecations(cmd.Flags(), g.logger())
			names := args
			if slices.Contains(args, "all") {
				names = app.StepNames
			}
			cfg, err := config.Load(g.configPath, cmd.Flags().Changed("config"), os.Environ())
			if err != nil {
				return err
			}
			f.nats.apply(&cfg.NATS)
			service := "guestflow-worker"
			if len(names) == 1 {
				service = "guestflow-" + names[0]
			}
			stopTracing, err := startTracing(cmd.Context(), service, g)
			if err != nil {
				return err
			}
			defer stopTracing()
			stopProfile, err := f.ops.profile()
			if err != nil {
				return err
			}
			defer stopProfile()
			return runWorkers(cmd.Context(), cfg, credentialsFromEnv(), names, f, g)
		},
	}
	f.nats.register(cmd.Flags())
	f.register(cmd)
	f.ops.register(cmd, "")
	f.ops.registerProfile(cmd)
	return cmd
}

// runWorkers runs the named steps until ctx ends.
func runWorkers(ctx context.Context, cfg config.Config, creds app.Credentials, names []string, f *workerFlags, g *globals) error {
	nc, js, err := app.Connect(cfg.NATS, "guestflow-worker")
	if err != nil {
		return err
	}
	defer nc.Close()
	so := f.stepOptions()
	so.Token = &app.FirstToken{}
	so.Replicas = cfg.NATS.StreamReplicas()
	steps, err := app.BuildSteps(ctx, cfg, creds, js, names, so)
	if err != nil {
		return err
	}
	// Ready: connected to NATS, every step's consumer there, and the
	// app's identity able to get a token.
	checks := []ops.Check{ops.NATSConnected(nc)}
	for _, s := range steps {
		checks = append(checks, ops.ConsumerBound(js, worker.Stream, s.Name))
	}
	checks = append(checks, ops.Check{Name: "token", Run: so.Token.Check})
	srv, err := f.ops.start(ctx, g.logger(), checks...)
	if err != nil {
		return err
	}
	if srv != nil {
		// After the drain: a draining worker is alive, not ready.
		defer srv.Shutdown()
	}
	eg, ctx := errgroup.WithContext(ctx)
	o := f.options(g)
	o.Streams = streamOptions(cfg.NATS)
	for _, s := range steps {
		eg.Go(func() error {
			if err := worker.Run(ctx, js, s, o); err != nil {
				return fmt.Errorf("worker %s: %w", s.Name, err)
			}
			return nil
		})
	}
	return eg.Wait()
}

// credentialsFromEnv reads the app's identity from azidentity's standard
// variables; main is the only place that reads the environment.
func credentialsFromEnv() app.Credentials {
	return app.Credentials{ClientID: os.Getenv("AZURE_CLIENT_ID"), ClientSecret: os.Getenv("AZURE_CLIENT_SECRET")}
}
