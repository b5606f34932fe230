package main

import (
	"strings"
	"testing"
)

func TestWorkerRejectsSettingsThatCannotWork(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--concurrency", "0"}, "--concurrency must be at least 1"},
		{[]string{"--max-attempts", "0"}, "--max-attempts must be at least 1"},
		{[]string{"--ack-wait", "10ms"}, "--ack-wait must be at least 1s"},
		{[]string{"--backoff-initial", "10s", "--backoff-max", "1s"}, "at most --backoff-max"},
		{[]string{"--backoff-initial", "0s"}, "--backoff-initial (0s) must be more than 0"},
		{[]string{"--write-rate", "-1"}, "--write-rate (-1)"},
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
