package main

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

func TestWorkerRejectsSettingsThatCannotWork(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--concurrency", "0"}, "--concurrency must be at least 1"},
		{[]string{"--max-failures", "0"}, "--max-failures must be at least 1"},
		{[]string{"--max-attempts", "0"}, "--max-failures must be at least 1"}, // the deprecated alias
		{[]string{"--ack-wait", "10ms"}, "--ack-wait must be at least 1s"},
		{[]string{"--step-timeout", "0s"}, "--step-timeout must be more than 0"},
		{[]string{"--drain-timeout", "-1s"}, "--drain-timeout must be more than 0"},
		{[]string{"--backoff-initial", "10s", "--backoff-max", "1s"}, "at most --backoff-max"},
		{[]string{"--backoff-initial", "0s"}, "--backoff-initial (0s) must be more than 0"},
		{[]string{"--write-rate", "-1"}, "--write-rate (-1)"},
		{[]string{"--pacer", "fixed"}, `--pacer "fixed": want adaptive or static`},
		{[]string{"--sync-deadline", "0s"}, "--sync-deadline (0s)"},
	} {
		for _, cmd := range [][]string{{"worker", "all"}, {"dev"}} {
			// Rejected before anything starts: no broker, no emulator.
			root := newRoot()
			root.SetArgs(append(cmd, tc.args...))
			root.SetOut(&strings.Builder{})
			root.SetErr(&strings.Builder{})
			err := root.ExecuteContext(t.Context())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v %v: %v, want %q", cmd, tc.args, err, tc.want)
			}
		}
	}
}

// parseWorkerFlags parses args as the worker flags of a command.
func parseWorkerFlags(t *testing.T, args ...string) (*workerFlags, string) {
	t.Helper()
	f := &workerFlags{}
	cmd := &cobra.Command{Use: "worker"}
	f.register(cmd)
	var out strings.Builder
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	f.deprecations(cmd.Flags(), slog.New(slog.NewTextHandler(&out, nil)))
	return f, out.String()
}

func TestMaxAttemptsIsADeprecatedAliasOfMaxFailures(t *testing.T) {
	f, said := parseWorkerFlags(t, "--max-attempts", "3")
	if got := f.options(&globals{}).MaxFailures; got != 3 {
		t.Errorf("--max-attempts 3 gave MaxFailures %d", got)
	}
	if !strings.Contains(said, "--max-attempts has been deprecated, use --max-failures") {
		t.Errorf("no deprecation notice naming --max-failures: %q", said)
	}
	f, said = parseWorkerFlags(t, "--max-failures", "4")
	if got := f.options(&globals{}).MaxFailures; got != 4 || said != "" {
		t.Errorf("--max-failures 4 gave MaxFailures %d and said %q", got, said)
	}
	f, _ = parseWorkerFlags(t)
	if got := f.options(&globals{}).MaxFailures; got != 10 {
		t.Errorf("default MaxFailures %d, want 10", got)
	}
}

func TestStepAndDrainTimeoutsReachTheRuntime(t *testing.T) {
	f, _ := parseWorkerFlags(t)
	if o := f.options(&globals{}); o.StepTimeout != 2*time.Minute || o.DrainTimeout != 25*time.Second {
		t.Errorf("defaults: step timeout %v, drain timeout %v; want 2m and 25s", o.StepTimeout, o.DrainTimeout)
	}
	f, _ = parseWorkerFlags(t, "--step-timeout", "5m", "--drain-timeout", "50s")
	if o := f.options(&globals{}); o.StepTimeout != 5*time.Minute || o.DrainTimeout != 50*time.Second {
		t.Errorf("step timeout %v, drain timeout %v; want 5m and 50s", o.StepTimeout, o.DrainTimeout)
	}
}
