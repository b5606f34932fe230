package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"

	"github.com/guestflow/guestflow/internal/ops"
	"github.com/guestflow/guestflow/internal/telemetry"
)

// opsFlags open the ops server (probes, metrics, pprof) of a long-running
// command: worker, dev and graphsim.
type opsFlags struct {
	addr       string
	pprof      bool
	cpuProfile string
}

// register adds --ops-addr, off unless def is given, and --pprof.
func (f *opsFlags) register(cmd *cobra.Command, def string) {
	help := "serve /livez, /readyz and /metrics on this address, e.g. :9464 (empty: no ops server)"
	if def != "" {
		help = "serve /livez, /readyz and /metrics on this address (empty: no ops server)"
	}
	cmd.Flags().StringVar(&f.addr, "ops-addr", def, help)
	cmd.Flags().BoolVar(&f.pprof, "pprof", false,
		"also serve net/http/pprof under /debug/pprof/ on --ops-addr (profiles and command line: keep the port private)")
}

// registerProfile adds --cpu-profile; the command calls profile.
func (f *opsFlags) registerProfile(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.cpuProfile, "cpu-profile", "",
		"write a CPU profile of the whole run to this file, for go tool pprof (see docs/profiling.md)")
}

// profile starts the CPU profile --cpu-profile asks for; the function it
// returns ends it and closes the file. Without the flag it does nothing.
//
// A file covering the process's whole life, rather than a window taken
// from /debug/pprof/profile, is what a benchmark needs: every onboarding's
// work is in it, from the first message to the drain.
func (f *opsFlags) profile() (func(), error) {
	if f.cpuProfile == "" {
		return func() {}, nil
	}
	out, err := os.Create(f.cpuProfile)
	if err != nil {
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		out.Close()
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		out.Close()
	}, nil
}

// start opens the ops server, or returns nil when --ops-addr is empty. Its
// readiness fails once ctx ends; the caller shuts it down when done.
func (f *opsFlags) start(ctx context.Context, log *slog.Logger, checks ...ops.Check) (*ops.Server, error) {
	if f.addr == "" {
		return nil, nil
	}
	return ops.Start(ctx, ops.Options{Addr: f.addr, Pprof: f.pprof, Checks: checks, Logger: log})
}

// startTracing sets up OpenTelemetry tracing from the OTEL_* variables,
// when they name an endpoint, under the default service name service. The
// function it returns flushes the spans not exported yet.
func startTracing(ctx context.Context, service string, g *globals) (func(), error) {
	log := g.logger()
	shutdown, on, err := telemetry.Start(ctx, telemetry.Options{
		ServiceName: service, Version: moduleVersion(), Getenv: os.Getenv, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if on {
		log.Info("tracing on: exporting spans over OTLP", "service", service)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			log.Warn("traces not all exported", "err", err)
		}
	}, nil
}

// moduleVersion is service.version: the module's version (a tag, or
// "(devel)" from a checkout), with the VCS revision when there is one.
func moduleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += "+" + s.Value[:12]
		}
	}
	return v
}
