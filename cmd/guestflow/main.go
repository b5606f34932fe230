// Command guestflow onboards external (B2B guest) users into Dynamics 365:
// workers for each step, the dev emulator, and the operator's tools.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// exitError carries a specific exit status (e.g. import's 3).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	// SIGTERM (Kubernetes, systemd) and Ctrl-C cancel ctx: workers stop
	// pulling and drain (--drain-timeout). The first signal also restores
	// the default handling, so a second one ends the process at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "guestflow:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

// globals are the flags every command shares.
type globals struct {
	configPath string
	verbose    bool
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "guestflow",
		Short: "Onboard external (B2B guest) users into Dynamics 365 / Dataverse",
		Long: `guestflow automates Microsoft's procedure for giving an external person access to
Dynamics 365: invite them through Entra ID B2B, fill in their profile, assign a
license, assign security roles, fix the email of pre-Dynamics 365 versions, and
tell them where to sign in. Each step is a worker on NATS JetStream.

Start with:  guestflow dev`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.PersistentFlags().StringVar(&g.configPath, "config", "guestflow.yaml",
		"configuration file; every value can be overridden by a GUESTFLOW_… environment variable")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log every step's work to stderr")
	root.AddCommand(newDev(g), newWorker(g), newGraphsim(g), newPublish(g), newIntake(g), newImport(g), newBench(g), newDLQ(g), newStatus(g), newVersion())
	return root
}

// logger logs to stderr: warnings by default, everything with -v.
func (g *globals) logger() *slog.Logger {
	level := slog.LevelWarn
	if g.verbose {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
