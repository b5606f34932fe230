package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

// TestVersion checks that `guestflow version` and `guestflow --version`
// print the same line, from the build info: the module version and the Go
// toolchain (a binary built in a checkout with -buildvcs adds its revision).
func TestVersion(t *testing.T) {
	run := func(args ...string) string {
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return strings.TrimSpace(out.String())
	}
	cmd, flag := run("version"), run("--version")
	if cmd != flag {
		t.Errorf("version %q and --version %q differ", cmd, flag)
	}
	if !strings.HasPrefix(cmd, "guestflow ") || !strings.HasSuffix(cmd, runtime.Version()) {
		t.Errorf("version = %q, want \"guestflow <module version> … %s\"", cmd, runtime.Version())
	}
}
