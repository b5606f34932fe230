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

// TestEmulatorListensOnLoopbackOnly checks the emulator's address guard:
// loopback addresses and names pass, anything another machine could reach
// needs --allow-remote.
func TestEmulatorListensOnLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:9443", "[::1]:9443", "localhost:0", "127.0.0.2:1"} {
		if err := loopbackOnly(addr, false); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
	for _, addr := range []string{":9443", "0.0.0.0:9443", "[::]:9443", "192.0.2.10:9443", "10.1.2.3:443"} {
		err := loopbackOnly(addr, false)
		if err == nil || !strings.Contains(err.Error(), "--allow-remote") {
			t.Errorf("%s: %v, want a refusal naming --allow-remote", addr, err)
		}
		if err := loopbackOnly(addr, true); err != nil {
			t.Errorf("%s with --allow-remote: %v", addr, err)
		}
	}
	if err := loopbackOnly("no-port", false); err == nil {
		t.Error("an address without a port must be refused")
	}
}
