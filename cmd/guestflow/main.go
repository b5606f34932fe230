// Command guestflow onboards external (B2B guest) users into Dynamics 365:
// workers for each step, the dev emulator, and the operator's tools.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

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
	g := &globals{stderr: os.Stderr, installDefault: true}
	err := newRootWith(g).ExecuteContext(ctx)
	stop()
	if err != nil {
		g.reportError(err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

// globals are the flags every command shares, and what main derives from
// them: the logger every command logs to stderr with.
type globals struct {
	configPath string
	verbose    bool
	logFormat  string
	logLevel   string

	// stderr is where logs go; nil is os.Stderr.
	stderr io.Writer
	// installDefault makes the logger slog's default, which the log
	// package (net/http's server errors) writes through too. Only main
	// sets it: tests build many roots in one process.
	installDefault bool
	log            *slog.Logger
}

// Log formats and levels of --log-format and --log-level.
var (
	logFormats = []string{"text", "json"}
	logLevels  = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}
)

func newRoot() *cobra.Command { return newRootWith(&globals{}) }

func newRootWith(g *globals) *cobra.Command {
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
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return g.setupLogging()
		},
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.PersistentFlags().StringVar(&g.configPath, "config", "guestflow.yaml",
		"configuration file; every value can be overridden by a GUESTFLOW_… environment variable")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log every step's work to stderr (the same as --log-level info)")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text",
		"how stderr is written: text (logfmt-style lines), or json (one JSON object a line, for a log pipeline)")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "",
		"the least severe log lines written: debug, info, warn or error (default warn, or info with -v)")
	root.AddCommand(newDev(g), newWorker(g), newGraphsim(g), newPublish(g), newIntake(g), newImport(g), newBench(g), newDLQ(g), newStatus(g), newProvision(g), newVersion())
	return root
}

// setupLogging checks --log-format and --log-level and builds the logger.
func (g *globals) setupLogging() error {
	if !slices.Contains(logFormats, g.logFormat) {
		return fmt.Errorf("--log-format %q: want text or json", g.logFormat)
	}
	if _, ok := logLevels[g.logLevel]; g.logLevel != "" && !ok {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	g.log = nil
	log := g.logger()
	if g.installDefault {
		slog.SetDefault(log)
		// What the log package prints (an HTTP server's TLS handshake
		// errors) was always shown; keep it above the default level.
		slog.SetLogLoggerLevel(slog.LevelWarn)
	}
	return nil
}

// logger logs to stderr: warnings by default, info with -v, or what
// --log-level says; as text, or one JSON object a line with --log-format
// json. Settings it does not know (before setupLogging checked them) give
// the defaults.
func (g *globals) logger() *slog.Logger {
	if g.log != nil {
		return g.log
	}
	level := slog.LevelWarn
	if g.verbose {
		level = slog.LevelInfo
	}
	if l, ok := logLevels[g.logLevel]; ok {
		level = l
	}
	opts := &slog.HandlerOptions{Level: level}
	if g.json() {
		g.log = slog.New(slog.NewJSONHandler(g.errWriter(), opts))
	} else {
		g.log = slog.New(slog.NewTextHandler(g.errWriter(), opts))
	}
	return g.log
}

func (g *globals) json() bool { return g.logFormat == "json" }

func (g *globals) errWriter() io.Writer {
	if g.stderr == nil {
		return os.Stderr
	}
	return g.stderr
}

// output is where a command writes what it tells people on stderr (import's
// rejected rows and summary, bench's progress, purge's question): cmd's
// stderr as it is, or with --log-format json a writer that makes each line
// one JSON object, so that nothing else on stderr breaks a log pipeline.
func (g *globals) output(cmd *cobra.Command) io.Writer {
	if !g.json() {
		return cmd.ErrOrStderr()
	}
	return &jsonLines{h: slog.NewJSONHandler(cmd.ErrOrStderr(), nil)}
}

// reportError writes the error a command ended with: "guestflow: <error>",
// or as a JSON object with --log-format json.
func (g *globals) reportError(err error) {
	if g.json() {
		slog.New(slog.NewJSONHandler(g.errWriter(), nil)).Error("command failed", "err", err.Error())
		return
	}
	fmt.Fprintln(g.errWriter(), "guestflow:", err)
}

// jsonLines writes each line written to it as one JSON log record at Info
// level, its text the record's msg. These lines are a command's output
// rather than logs: text mode prints them whatever --log-level says, and
// so does this.
type jsonLines struct {
	mu  sync.Mutex
	h   slog.Handler
	buf []byte
}

func (j *jsonLines) Write(p []byte) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.buf = append(j.buf, p...)
	for {
		i := bytes.IndexByte(j.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(j.buf[:i])
		j.buf = j.buf[i+1:]
		if err := j.emit(line); err != nil {
			return len(p), err
		}
	}
}

// Flush writes a line not ended yet, such as a question waiting for its
// answer on the same line.
func (j *jsonLines) Flush() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	line := string(j.buf)
	j.buf = nil
	return j.emit(line)
}

func (j *jsonLines) emit(line string) error {
	line = strings.TrimSpace(line)
	if line == "" {
		return nil
	}
	return j.h.Handle(context.Background(), slog.NewRecord(time.Now(), slog.LevelInfo, line, 0))
}
