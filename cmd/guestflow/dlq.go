package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/guestflow/guestflow/internal/dlq"
)

func newDLQ(g *globals) *cobra.Command {
	var natsURL natsFlag
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect, replay and purge dead letters",
		Long: `Dead letters are the inputs a step could not handle and no retry would fix: an
invalid event, an unknown instance, SKU or role, no free license seat, a remote call
that failed for good. Each is kept in the stream GUESTFLOW_DLQ (on guestflow.dlq.<step>)
with its body unchanged and Guestflow-… headers that say which step failed, why
(Guestflow-Reason), and what to fix (Guestflow-Error).

Fix the cause, then replay: the dead letter is published again to the subject it came
from and removed once the broker has stored it. Every step is idempotent, so a replay
never invites, licenses or assigns a role twice.

Every subcommand takes the same filters, combined with AND; a filter given several
values (repeated, or separated by commas) matches any of them:

  --step license               the step that failed: invite, license, role, notify
  --reason no_license_seats    Guestflow-Reason
  --onboarding-id ID           the onboarding (the joined event's id)
  --since 2h / --until 2026-03-01T09:00:00Z
                               when it failed: RFC 3339, a date, or a duration ago

show, replay and purge also take dead letters' sequences (the SEQ column of list).`,
		Example: `  guestflow dlq list
  guestflow dlq list --reason no_license_seats --since 24h
  guestflow dlq show 17
  guestflow dlq replay --reason no_license_seats --dry-run
  guestflow dlq replay 17 18
  guestflow dlq purge --step invite --reason invalid_event`,
		Args: cobra.NoArgs,
	}
	natsURL.register(cmd.PersistentFlags())
	cmd.AddCommand(newDLQList(g, &natsURL), newDLQShow(g, &natsURL), newDLQReplay(g, &natsURL), newDLQPurge(g, &natsURL))
	return cmd
}

// dlqFilterFlags are the filters every dlq subcommand takes.
type dlqFilterFlags struct {
	steps, reasons, onboardingIDs []string
	since, until                  string
}

func (f *dlqFilterFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.steps, "step", nil, "only dead letters of these steps: invite, license, role, notify")
	fl.StringSliceVar(&f.reasons, "reason", nil, "only these reasons (Guestflow-Reason), e.g. no_license_seats")
	fl.StringSliceVar(&f.onboardingIDs, "onboarding-id", nil, "only these onboardings (the joined event's id)")
	fl.StringVar(&f.since, "since", "", "only dead letters that failed at or after this time: RFC 3339, a date, or a duration ago such as 2h or 7d")
	fl.StringVar(&f.until, "until", "", "only dead letters that failed before this time (same forms as --since)")
}

// filter builds the filter from the flags and the sequences in args.
func (f *dlqFilterFlags) filter(args []string) (dlq.Filter, error) {
	seqs, err := dlq.ParseSeqs(args)
	if err != nil {
		return dlq.Filter{}, err
	}
	flt := dlq.Filter{Seqs: seqs, Steps: f.steps, Reasons: f.reasons, OnboardingIDs: f.onboardingIDs}
	now := time.Now()
	if f.since != "" {
		if flt.Since, err = dlq.ParseTime(f.since, now); err != nil {
			return dlq.Filter{}, fmt.Errorf("--since: %w", err)
		}
	}
	if f.until != "" {
		if flt.Until, err = dlq.ParseTime(f.until, now); err != nil {
			return dlq.Filter{}, fmt.Errorf("--until: %w", err)
		}
	}
	return flt, flt.Validate()
}

// open parses the filter and connects, as every dlq subcommand starts.
func (f *dlqFilterFlags) open(cmd *cobra.Command, g *globals, natsURL natsFlag, args []string) (dlq.Filter, *nats.Conn, jetstream.JetStream, error) {
	flt, err := f.filter(args)
	if err != nil {
		return dlq.Filter{}, nil, nil, err
	}
	nc, js, err := connectOperator(cmd, g, natsURL, "guestflow-dlq")
	return flt, nc, js, err
}

func newDLQList(g *globals, natsURL *natsFlag) *cobra.Command {
	var (
		f      dlqFilterFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list [seq]...",
		Short: "List dead letters: when, which step, why, which onboarding",
		Long: `List the dead letters that match the filters, oldest first: sequence, failure time,
step, reason, onboarding id, deliveries used, the HTTP status of a failed remote call,
and the start of the error. 'guestflow dlq show SEQ' prints one in full.

--json prints one JSON array instead: each dead letter with every header, its
sequence and subject, the contract's headers as fields (step, reason, error,
attempts, failedAt, onboardingId, originalSubject, httpStatus, requestId), and
the body as JSON when it is JSON (else as bodyText).`,
		Example: `  guestflow dlq list
  guestflow dlq list --step license --since 2h
  guestflow dlq list --reason no_license_seats,unknown_sku
  guestflow dlq list --json | jq -r '.[] | select(.httpStatus == 403) | .seq'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			flt, nc, js, err := f.open(cmd, g, *natsURL, args)
			if err != nil {
				return err
			}
			defer nc.Close()
			ls, err := dlq.List(cmd.Context(), js, flt)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case asJSON:
				return dlq.WriteJSON(out, ls)
			case len(ls) == 0 && flt.Empty():
				fmt.Fprintln(out, "no dead letters")
				return nil
			case len(ls) == 0:
				fmt.Fprintf(out, "no dead letters match (%s)\n", flt)
				return nil
			}
			return dlq.WriteTable(out, ls)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON array with every header and the body")
	return cmd
}

func newDLQShow(g *globals, natsURL *natsFlag) *cobra.Command {
	var f dlqFilterFlags
	cmd := &cobra.Command{
		Use:   "show [seq]...",
		Short: "Print dead letters in full: every header and the body",
		Long: `Print each dead letter that the sequences and filters select: every header (the
Guestflow-… ones first) and the body, pretty-printed when it is JSON.`,
		Example: `  guestflow dlq show 17
  guestflow dlq show 17 18 21
  guestflow dlq show --onboarding-id 7e8b8f0a-2c75-4c09-90bc-c4984599804e`,
		RunE: func(cmd *cobra.Command, args []string) error {
			flt, err := f.filter(args)
			if err != nil {
				return err
			}
			if flt.Empty() {
				return errors.New("say which dead letters: their sequences (the SEQ column of 'guestflow dlq list') or a filter such as --onboarding-id")
			}
			nc, js, err := connectOperator(cmd, g, *natsURL, "guestflow-dlq")
			if err != nil {
				return err
			}
			defer nc.Close()
			ls, err := dlq.List(cmd.Context(), js, flt)
			if err != nil {
				return err
			}
			if len(ls) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "no dead letters match (%s)\n", flt)
				return nil
			}
			return dlq.WriteDetails(cmd.OutOrStdout(), ls)
		},
	}
	f.register(cmd)
	return cmd
}

func newDLQReplay(g *globals, natsURL *natsFlag) *cobra.Command {
	var (
		f  dlqFilterFlags
		ro dlq.ReplayOptions
	)
	cmd := &cobra.Command{
		Use:   "replay [seq]...",
		Short: "Publish dead letters again to the subject they came from",
		Long: `Replay the dead letters that the sequences and filters select, oldest first: each is
published again to its Guestflow-Original-Subject with its body and original headers,
and removed from GUESTFLOW_DLQ only once the broker has stored it. Its Nats-Msg-Id,
replay:GUESTFLOW_DLQ:<seq>:<stored>, is new to the duplicate window (which still
holds the input's own id) but the same for every replay of one dead letter: two
replays of it at once, or a replay run again after one was interrupted between
publishing and removing, store it once within the window (2 minutes). A replay
that fails again comes back as a new dead letter with a new sequence. Without
sequences or filters, every dead letter is replayed.

Fix the cause first: buy or free license seats for no_license_seats, fix the
configuration for unknown_instance / unknown_role, the credentials for auth_failed.
An invalid_event fails again whatever you do: publish a corrected event instead.

--rate paces the replays (per second; 0 is unlimited) so that a large backlog does
not meet Graph's throttling all at once. A progress bar is drawn on stderr when it
is a terminal. The exit status is non-zero when any dead letter could not be
replayed; the failures are listed by sequence.`,
		Example: `  guestflow dlq replay --reason no_license_seats --dry-run
  guestflow dlq replay --reason no_license_seats
  guestflow dlq replay 17 18
  guestflow dlq replay --step role --since 1h --rate 2`,
		RunE: func(cmd *cobra.Command, args []string) error {
			flt, err := f.filter(args)
			if err != nil {
				return err
			}
			if ro.Rate < 0 {
				return fmt.Errorf("--rate must be 0 (unlimited) or more, not %g", ro.Rate)
			}
			ro.Filter = flt
			nc, js, err := connectOperator(cmd, g, *natsURL, "guestflow-dlq")
			if err != nil {
				return err
			}
			defer nc.Close()
			var finish func()
			if !ro.DryRun {
				ro.Progress, finish = newReplayProgress(g.output(cmd))
				defer finish()
			}
			_, err = dlq.ReplayMatching(cmd.Context(), js, ro, cmd.OutOrStdout())
			return err
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&ro.DryRun, "dry-run", false, "print what would be replayed and change nothing")
	cmd.Flags().Float64Var(&ro.Rate, "rate", dlq.DefaultRate, "replays per second; 0 is unlimited")
	return cmd
}

// newReplayProgress draws a progress bar on w, but only on a terminal: in a
// log or a pipe the summary line says it all. finish clears the bar.
func newReplayProgress(w io.Writer) (progress func(done, total int), finish func()) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, func() {}
	}
	var bar *progressbar.ProgressBar
	progress = func(done, total int) {
		if bar == nil {
			bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("replaying"),
				progressbar.OptionShowCount(), progressbar.OptionSetWidth(30), progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish())
		}
		_ = bar.Set(done)
	}
	return progress, func() {
		if bar != nil {
			_ = bar.Finish()
		}
	}
}

// stdinIsTerminal reports whether r is an interactive terminal; tests
// replace it.
var stdinIsTerminal = func(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func newDLQPurge(g *globals, natsURL *natsFlag) *cobra.Command {
	var (
		f   dlqFilterFlags
		yes bool
	)
	cmd := &cobra.Command{
		Use:   "purge [seq]...",
		Short: "Delete dead letters for good",
		Long: `Delete the dead letters that the sequences and filters select. Without sequences or
filters it deletes every dead letter. Dead letters that arrive while it runs are
never deleted: only those counted in the question are.

It asks "Delete N dead letters? [y/N]" on the terminal; --yes skips the question,
and is required when stdin is not a terminal (a script, a pipe, CI).

Purge what cannot be replayed, e.g. invalid events after a corrected event has been
published; replay the rest.`,
		Example: `  guestflow dlq purge 17
  guestflow dlq purge --step invite --reason invalid_event
  guestflow dlq purge --until 30d --yes`,
		RunE: func(cmd *cobra.Command, args []string) error {
			flt, nc, js, err := f.open(cmd, g, *natsURL, args)
			if err != nil {
				return err
			}
			defer nc.Close()
			po := dlq.PurgeOptions{Filter: flt}
			if !yes {
				po.Confirm = confirmPurge(cmd.InOrStdin(), g.output(cmd), flt)
			}
			_, err = dlq.Purge(cmd.Context(), js, po, cmd.OutOrStdout())
			return err
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "delete without asking")
	return cmd
}

// confirmPurge asks on the terminal; without one it refuses.
func confirmPurge(in io.Reader, prompt io.Writer, flt dlq.Filter) func(int) (bool, error) {
	return func(n int) (bool, error) {
		what := fmt.Sprintf("%d dead letters", n)
		if n == 1 {
			what = "1 dead letter"
		}
		if !stdinIsTerminal(in) {
			return false, fmt.Errorf("refusing to delete %s without confirmation: stdin is not a terminal; pass --yes to delete them", what)
		}
		fmt.Fprintf(prompt, "Delete %s (%s)? [y/N] ", what, flt)
		if f, ok := prompt.(interface{ Flush() error }); ok {
			_ = f.Flush() // --log-format json: the question is a line of its own
		}
		answer, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && answer == "" {
			return false, nil
		}
		switch strings.ToLower(strings.TrimSpace(answer)) {
		case "y", "yes":
			return true, nil
		}
		return false, nil
	}
}
