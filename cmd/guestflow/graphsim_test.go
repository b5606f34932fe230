package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestSimFlagsBudgets: the budget flags reach the emulator, and a bad
// value names its flag.
func TestSimFlagsBudgets(t *testing.T) {
	parse := func(args ...string) *simFlags {
		t.Helper()
		f := &simFlags{}
		cmd := &cobra.Command{Use: "x"}
		f.register(cmd, "addr")
		if err := cmd.Flags().Parse(append([]string{"--addr", "127.0.0.1:0"}, args...)); err != nil {
			t.Fatal(err)
		}
		return f
	}
	sim, err := parse("--write-limit", "3000/150s", "--tenant-write-limit", "18000/5m", "--ru-limit", "3500/10s",
		"--invite-limit", "150/5s", "--mail-limit", "10000/10m", "--neighbour-rate", "0/s,30/s@20s,0/s@40s").start()
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	want := map[string]string{"write": "3000/2m30s", "tenantWrite": "18000/5m0s", "ru": "3500/10s", "invite": "150/5s", "mail": "10000/10m0s", "mailConcurrency": "4"}
	got := sim.Stats().Scopes
	for k, v := range want {
		if got[k].Limit != v {
			t.Errorf("scope %s: limit %q, want %q", k, got[k].Limit, v)
		}
	}

	for flag, bad := range map[string]string{
		"--tenant-write-limit": "lots", "--ru-limit": "0/10s", "--mail-limit": "5", "--neighbour-rate": "30/s@20s",
	} {
		_, err := parse(flag, bad).start()
		if err == nil || !strings.HasPrefix(err.Error(), flag+": ") {
			t.Errorf("%s %q: error %v, want one naming the flag", flag, bad, err)
		}
	}
}
