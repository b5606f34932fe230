package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/intake"
)

// TestIntakeRefusesToStartWithoutACredential fails before it connects to
// NATS, naming the flags to give.
func TestIntakeRefusesToStartWithoutACredential(t *testing.T) {
	root := newRoot()
	root.SetArgs([]string{"intake", "--config", writeConfig(t, ""), "--nats", "nats://127.0.0.1:1"})
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "--tokens-file, --hmac-secret-file or --client-ca") {
		t.Fatalf("error %v", err)
	}
}

// TestIntakeFlagsOverTheConfiguration: a flag given wins, then the
// intake: key, then the flag's default.
func TestIntakeFlagsOverTheConfiguration(t *testing.T) {
	f := &intakeFlags{}
	fl := pflag.NewFlagSet("intake", pflag.ContinueOnError)
	f.register(fl)
	if err := fl.Parse([]string{"--rate", "7", "--tokens-file", "/flag/tokens"}); err != nil {
		t.Fatal(err)
	}
	o := f.options(fl, config.Intake{Rate: 50, Burst: 9, TokensFile: "/config/tokens", HMACSecretFile: "/config/hmac", PublishTimeout: time.Second})
	if o.Rate != 7 || o.TokensFile != "/flag/tokens" {
		t.Errorf("a flag given lost to the configuration: %+v", o)
	}
	if o.Burst != 9 || o.HMACSecretFile != "/config/hmac" || o.PublishTimeout != time.Second {
		t.Errorf("the configuration lost to a default: %+v", o)
	}
	if o.Listen != intake.DefaultListen {
		t.Errorf("listen %q", o.Listen)
	}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "guestflow.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
