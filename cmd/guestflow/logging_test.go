package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestLogFlagsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-format", "xml", "version"}, `--log-format "xml": want text or json`},
		{[]string{"--log-level", "loud", "version"}, `--log-level "loud": want debug, info, warn or error`},
	} {
		root := newRoot()
		root.SetArgs(tc.args)
		root.SetOut(&bytes.Buffer{})
		if err := root.ExecuteContext(t.Context()); err == nil || err.Error() != tc.want {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestLogLevel(t *testing.T) {
	for _, tc := range []struct {
		g    globals
		want slog.Level
	}{
		{globals{}, slog.LevelWarn},
		{globals{verbose: true}, slog.LevelInfo},
		{globals{logLevel: "debug"}, slog.LevelDebug},
		{globals{verbose: true, logLevel: "error"}, slog.LevelError}, // the explicit level wins
		{globals{logLevel: "warn", logFormat: "json"}, slog.LevelWarn},
	} {
		g := tc.g
		g.stderr = &bytes.Buffer{}
		if g.logFormat == "" {
			g.logFormat = "text" // the flag's default
		}
		if err := g.setupLogging(); err != nil {
			t.Fatal(err)
		}
		log := g.logger()
		if !log.Enabled(context.Background(), tc.want) || log.Enabled(context.Background(), tc.want-1) {
			t.Errorf("%+v: not logging from %v on", tc.g, tc.want)
		}
	}
}

// jsonLinesOf checks that every line of s is one JSON object and returns
// them.
func jsonLinesOf(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Errorf("stderr line is not a JSON object: %q", sc.Text())
			continue
		}
		out = append(out, m)
	}
	return out
}

func TestErrorsAreJSONWithLogFormatJSON(t *testing.T) {
	var text, js bytes.Buffer
	(&globals{stderr: &text}).reportError(errors.New("boom"))
	if text.String() != "guestflow: boom\n" {
		t.Errorf("text: %q", text.String())
	}
	(&globals{stderr: &js, logFormat: "json"}).reportError(errors.New("boom"))
	lines := jsonLinesOf(t, js.String())
	if len(lines) != 1 || lines[0]["level"] != "ERROR" || lines[0]["err"] != "boom" {
		t.Errorf("json: %q", js.String())
	}
}

func TestJSONLinesMakesEachLineAnObject(t *testing.T) {
	var b bytes.Buffer
	w := &jsonLines{h: slog.NewJSONHandler(&b, nil)}
	for _, s := range []string{"in.csv:5: rejected: ", "usageLocation\n\nsecond", " line\nDelete 2 dead letters? [y/N] "} {
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, m := range jsonLinesOf(t, b.String()) {
		msgs = append(msgs, m["msg"].(string))
	}
	want := []string{"in.csv:5: rejected: usageLocation", "second line", "Delete 2 dead letters? [y/N]"}
	if strings.Join(msgs, "|") != strings.Join(want, "|") {
		t.Errorf("messages %q, want %q", msgs, want)
	}
}

// TestImportReportIsJSONWithLogFormatJSON: what import tells people on
// stderr, rejected rows and the summary, is one JSON object a line.
func TestImportReportIsJSONWithLogFormatJSON(t *testing.T) {
	e := newImportEnv(t)
	in := e.csvFile("some.csv", "ana@fabrikam.com,,,,Ana,Silva,PT,sales,,", "liam@contoso.example,,,,Liam,O'Brien,UK,sales,,")
	var b bytes.Buffer
	g := &globals{stderr: &b}
	root := newRootWith(g)
	root.SetArgs([]string{"import", in, "--config", e.config, "--log-format", "json"})
	root.SetErr(&b)
	root.SetOut(&bytes.Buffer{})
	err := root.ExecuteContext(t.Context())
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 3 {
		t.Fatalf("%v, want exit status 3:\n%s", err, b.String())
	}
	g.reportError(err) // as main does
	stderr := b.String()
	var msgs []string
	for _, m := range jsonLinesOf(t, stderr) {
		msgs = append(msgs, m["msg"].(string))
	}
	got := strings.Join(msgs, "\n")
	for _, want := range []string{in + ":4: rejected: usageLocation", "1 published, 0 duplicate, 1 rejected", "command failed"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in the JSON lines:\n%s", want, stderr)
		}
	}
}

// TestDevLogsJSONWithLogFormatJSON runs `guestflow dev --log-format json
// -v`: everything on stderr is one JSON object a line, and each step's
// outcome names the onboarding, its event, its attempt and its trace.
func TestDevLogsJSONWithLogFormatJSON(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, stderr := &syncBuffer{}, &syncBuffer{}
	root := newRootWith(&globals{stderr: stderr})
	root.SetOut(out)
	root.SetErr(stderr)
	root.SetArgs([]string{"dev", "--log-format", "json", "-v", "--max-attempts", "10",
		"--nats-addr", "127.0.0.1:" + freePort(t), "--monitor-port", "0",
		"--graphsim-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--sync-delay", "200ms"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	deadline := time.After(60 * time.Second)
	for !strings.Contains(out.String(), "The demo user is onboarded") {
		select {
		case err := <-done:
			t.Fatalf("dev ended early: %v\n%s\n%s", err, out, stderr)
		case <-deadline:
			t.Fatalf("demo user not onboarded within 60s:\n%s", out)
		case <-time.After(50 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	id := regexp.MustCompile(`onboarding ([0-9a-f-]{36})`).FindStringSubmatch(out.String())
	if id == nil {
		t.Fatalf("no onboarding id in:\n%s", out)
	}
	steps := map[string]bool{}
	traces := map[any]bool{}
	deprecated := false
	for _, m := range jsonLinesOf(t, stderr.String()) {
		if strings.Contains(m["msg"].(string), "--max-attempts has been deprecated") {
			deprecated = true
		}
		if m["msg"] != "step done" || m["onboarding_id"] != id[1] {
			continue
		}
		steps[m["step"].(string)] = true
		traces[m["trace_id"]] = true
		if _, ok := m["event_id"].(string); !ok || m["attempt"] == nil || m["duration_ms"] == nil {
			t.Errorf("step done without event_id, attempt or duration_ms: %v", m)
		}
	}
	if len(steps) != 4 {
		t.Errorf("step done logged by %v, want all four steps:\n%s", steps, stderr)
	}
	if len(traces) != 1 {
		t.Errorf("the onboarding's lines name traces %v, want one", traces)
	}
	for tr := range traces {
		if s, _ := tr.(string); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(s) {
			t.Errorf("trace_id %v is not 32 hex digits", tr)
		}
	}
	if !deprecated {
		t.Errorf("no JSON line saying --max-attempts is deprecated:\n%s", stderr)
	}
}
