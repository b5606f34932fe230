//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// This file runs the programs under test as real processes for TestChaos:
// each one can be SIGKILLed and started again with the same arguments, its
// stdout and stderr go to one log file per process (appended across
// restarts), and every process still running when the test ends is killed.
// It is Linux-only because the children are also tied to the test binary
// with PR_SET_PDEATHSIG, so that not even a test that times out and panics
// (when t.Cleanup does not run) leaves a broker or a worker behind.

// chaosProc is one program that the test starts, kills and restarts.
type chaosProc struct {
	t    *testing.T
	name string
	bin  string
	args []string
	env  []string // nil: the test's environment
	log  string

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the current run has ended
	killed   bool          // the current run was ended by kill
	starts   int
	unwanted []string // runs that ended without being killed
}

// newChaosProc prepares a process logging to dir/name.log and makes sure it
// is killed when the test ends.
func newChaosProc(t *testing.T, dir, name, bin string, env []string, args ...string) *chaosProc {
	p := &chaosProc{t: t, name: name, bin: bin, args: args, env: env, log: filepath.Join(dir, name+".log")}
	t.Cleanup(p.kill)
	return p
}

// start runs the program (again). The log file is appended to, with a
// marker line per run.
func (p *chaosProc) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !isClosed(p.exited) {
		p.t.Fatalf("%s: started while running", p.name)
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close() // the child has its own copy of the descriptor
	p.starts++
	fmt.Fprintf(f, "=== chaos: start #%d of %s at %s: %s %s\n", p.starts, p.name,
		time.Now().Format("15:04:05.000"), filepath.Base(p.bin), strings.Join(p.args, " "))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	// Own process group (a Ctrl-C in the terminal reaches only go test) and
	// SIGKILL from the kernel should the test binary die without cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited, p.killed = cmd, exited, false
	run := p.starts
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		if !p.killed {
			p.unwanted = append(p.unwanted, fmt.Sprintf("run #%d (pid %d) ended by itself: %v", run, cmd.Process.Pid, err))
		}
		p.mu.Unlock()
		close(exited)
	}()
}

// kill sends SIGKILL to the current run, if any, and waits until it is gone.
func (p *chaosProc) kill() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	if cmd == nil || isClosed(exited) {
		p.mu.Unlock()
		return
	}
	p.killed = true
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		p.t.Errorf("%s (pid %d) still running 10s after SIGKILL", p.name, cmd.Process.Pid)
	}
}

// pid is the current run's process id.
func (p *chaosProc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// problems lists the runs that ended without being killed.
func (p *chaosProc) problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.unwanted...)
}

// tail returns the last n lines of the log.
func (p *chaosProc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// grep returns the last n lines of the log that contain s.
func (p *chaosProc) grep(s string, n int) []string {
	b, _ := os.ReadFile(p.log)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// logContains reports whether the log holds s.
func (p *chaosProc) logContains(s string) bool {
	b, _ := os.ReadFile(p.log)
	return bytes.Contains(b, []byte(s))
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// chaosFreePort returns a loopback TCP port nobody listens on right now.
func chaosFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// chaosAccepts reports whether something accepts TCP connections on port.
func chaosAccepts(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// chaosModuleRoot finds the directory of go.mod above the working directory.
func chaosModuleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// chaosBuild runs `go build -o dir/<name> pkg` in the module root, on the
// ordinary build cache, and returns the binary's path.
func chaosBuild(t *testing.T, root, dir, name, pkg string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build %s: %v", name, err)
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command(gobin, "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -o %s %s: %v\n%s", out, pkg, err, b)
	}
	return out
}

// chaosEnv is the test's environment without the variables that would
// change what the workers read (GUESTFLOW_… overrides, Azure identities),
// plus extra.
func chaosEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GUESTFLOW_") || strings.HasPrefix(kv, "AZURE_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

var (
	chaosLogMsg   = regexp.MustCompile(`level=(WARN|ERROR|INFO) msg="([^"]*)"(?: step=(\w+))?`)
	chaosLogErr   = regexp.MustCompile(`err="((?:[^"\\]|\\.)*)"`)
	chaosLogNoise = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F-]{27}|\d+(\.\d+)?`)
)

// summary counts the log's warnings, errors and retries by message, step
// and error (ids and numbers folded), most frequent first.
func (p *chaosProc) summary(top int) []string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return []string{err.Error()}
	}
	count := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		m := chaosLogMsg.FindStringSubmatch(line)
		if m == nil || (m[1] == "INFO" && m[2] != "step retried" && m[2] != "step throttled") {
			continue
		}
		key := m[1] + " " + m[2] + " step=" + m[3]
		if e := chaosLogErr.FindStringSubmatch(line); e != nil {
			msg := chaosLogNoise.ReplaceAllString(e[1], "#")
			if len(msg) > 200 {
				msg = msg[:200] + "…"
			}
			key += ": " + msg
		}
		count[key]++
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return count[keys[i]] > count[keys[j]] })
	if len(keys) > top {
		keys = keys[:top]
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = fmt.Sprintf("%6d× %s", count[k], k)
	}
	return out
}
