package intake_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/broker"
	"github.com/guestflow/guestflow/internal/intake"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// childEnv makes the test binary serve an intake instead of running tests:
// BenchmarkIntake runs the intake it measures as a process of its own, on
// one core (GOMAXPROCS=1), apart from the broker and the senders.
const childEnv = "GUESTFLOW_INTAKE_BENCH_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(serveChild())
	}
	os.Exit(m.Run())
}

// serveChild serves an intake on a free loopback port for the NATS URL
// and tokens file in its environment, prints its URL, and stops when its
// standard input closes.
func serveChild() int {
	nc, err := nats.Connect(os.Getenv("GUESTFLOW_INTAKE_BENCH_NATS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer nc.Close()
	srv, err := intake.New(nc, intake.Options{Listen: "127.0.0.1:0", TokensFile: os.Getenv("GUESTFLOW_INTAKE_BENCH_TOKENS"),
		Rate: 1e9, Burst: 1 << 30})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := srv.Listen()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if path := os.Getenv("GUESTFLOW_INTAKE_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Printf("listening %s gomaxprocs=%d\n", srv.URL(ln), runtime.GOMAXPROCS(0))
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	go func() {
		_, _ = bufio.NewReader(os.Stdin).ReadByte() // EOF when the parent goes
		cancel()
	}()
	if err := srv.Serve(ctx, ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// benchRig is a broker with the streams, and an intake process on it.
type benchRig struct {
	js     jetstream.JetStream
	intake string // base URL
	procs  string // the intake's GOMAXPROCS
}

func newBenchRig(b *testing.B) *benchRig {
	b.Helper()
	ns, err := broker.Start(broker.Options{Port: -1, StoreDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	if err := worker.EnsureStreams(context.Background(), js, worker.StreamOptions{}); err != nil {
		b.Fatal(err)
	}
	tokens := filepath.Join(b.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte(tokenA+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	procs := os.Getenv("GUESTFLOW_BENCH_INTAKE_PROCS")
	if procs == "" {
		procs = "1"
	}
	cmd := exec.Command(os.Args[0])
	if cpus := os.Getenv("GUESTFLOW_BENCH_INTAKE_CPUS"); cpus != "" {
		// Pin the intake to these CPUs (taskset), e.g. one the test
		// binary itself is kept off.
		cmd = exec.Command("taskset", "-c", cpus, os.Args[0])
	}
	cmd.Env = append(os.Environ(), childEnv+"=1", "GOMAXPROCS="+procs,
		"GUESTFLOW_INTAKE_BENCH_NATS="+ns.ClientURL(), "GUESTFLOW_INTAKE_BENCH_TOKENS="+tokens)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("the intake process: %v", err)
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "listening" {
		b.Fatalf("the intake process said %q", line)
	}
	return &benchRig{js: js, intake: f[1], procs: strings.TrimPrefix(f[2], "gomaxprocs=")}
}

// benchRun tells events of one run apart from those of another on the
// same broker, where the duplicate window would drop them.
var benchRun atomic.Int64

// benchEvents returns n distinct joined events, as structured JSON.
func benchEvents(n int) [][]byte {
	run := benchRun.Add(1)
	out := make([][]byte, n)
	for i := range out {
		out[i] = joined(fmt.Sprintf("bench-%d-%d-%d", time.Now().UnixNano(), run, i), fmt.Sprintf("user%d@fabrikam.com", i))
	}
	return out
}

// sender publishes one event and reports how it went.
type sender func(body []byte) error

func directSender(js jetstream.JetStream) sender {
	return func(body []byte) error {
		m := &nats.Msg{Subject: events.SubjectJoined, Header: nats.Header{"Content-Type": {"application/cloudevents+json"}}, Data: body}
		id := events.PeekID(nil, body)
		_, err := js.PublishMsg(context.Background(), m, jetstream.WithMsgID(id), jetstream.WithExpectStream(worker.Stream))
		return err
	}
}

// intakeSender posts each event on one of senders kept-alive connections
// with a minimal HTTP/1.1 client: net/http's own costs the sending side
// several times what the intake spends on a request, and on a small
// machine the senders would measure themselves rather than the intake.
func intakeSender(b *testing.B, url string, senders int) sender {
	b.Helper()
	addr := strings.TrimPrefix(url, "http://")
	conns := make(chan *rawConn, senders)
	for range senders {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		conns <- &rawConn{c: c, r: bufio.NewReader(c)}
	}
	head := "POST /v1/events HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: Bearer " + tokenA +
		"\r\nContent-Type: application/cloudevents+json\r\nContent-Length: "
	return func(body []byte) error {
		c := <-conns
		defer func() { conns <- c }()
		c.buf = append(append(append(append(c.buf[:0], head...), strconv.Itoa(len(body))...), "\r\n\r\n"...), body...)
		if _, err := c.c.Write(c.buf); err != nil {
			return err
		}
		return c.readResponse()
	}
}

type rawConn struct {
	c   net.Conn
	r   *bufio.Reader
	buf []byte
}

// readResponse reads one answer and wants a 202.
func (c *rawConn) readResponse() error {
	status, err := c.r.ReadSlice('\n')
	if err != nil {
		return err
	}
	ok := bytes.HasPrefix(status, []byte("HTTP/1.1 202 "))
	first := string(status)
	n := 0
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if v, found := bytes.CutPrefix(line, []byte("Content-Length: ")); found {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if _, err := c.r.Discard(n); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s", strings.TrimSpace(first))
	}
	return nil
}

// load sends every event with senders goroutines, each as soon as the
// last answered (closed loop), or, with rate > 0, each at its time in a
// schedule of rate events a second (open loop, latency counted from the
// scheduled time so a backlog shows). It reports events per second and
// the latencies.
func load(b *testing.B, send sender, bodies [][]byte, senders int, rate float64) (perSecond float64, lat []time.Duration) {
	b.Helper()
	lat = make([]time.Duration, len(bodies))
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(bodies) {
					return
				}
				t0 := time.Now()
				if rate > 0 {
					t0 = start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
					time.Sleep(time.Until(t0))
				}
				if err := send(bodies[i]); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d events failed, the first: %v", n, len(bodies), firstErr.Load())
	}
	slices.Sort(lat)
	return float64(len(bodies)) / elapsed.Seconds(), lat
}

func percentile(lat []time.Duration, p float64) time.Duration {
	return lat[min(len(lat)-1, int(float64(len(lat))*p))]
}

func report(b *testing.B, perSecond float64, lat []time.Duration) {
	b.ReportMetric(perSecond, "events/s")
	b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99_ms")
	b.ReportMetric(0, "ns/op") // time per event is events/s's inverse; the loop's own ns/op means nothing here
}

// BenchmarkIntake measures an intake process on one core (GOMAXPROCS=1;
// GUESTFLOW_BENCH_INTAKE_PROCS sets another, GUESTFLOW_BENCH_INTAKE_CPUS
// pins it with taskset) against the broker floor: the
// same structured joined events published with nats.go and a PubAck, by
// the same number of concurrent senders (GUESTFLOW_BENCH_SENDERS, default
// 32), on the same embedded broker. b.N is the number of events. The
// paced runs send 500 events a second and report the latency from each
// event's scheduled time. Run it as
//
//	go test -run '^$' -bench BenchmarkIntake -benchtime 20000x ./internal/intake/
//
// (-benchtime Nx: each sub-benchmark sends N events once.)
func BenchmarkIntake(b *testing.B) {
	senders := 32
	if s := os.Getenv("GUESTFLOW_BENCH_SENDERS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("GUESTFLOW_BENCH_SENDERS=%q", s)
		}
		senders = n
	}
	r := newBenchRig(b)
	b.Logf("intake process GOMAXPROCS=%s, %d senders, broker and senders on GOMAXPROCS=%d", r.procs, senders, runtime.GOMAXPROCS(0))
	// Warm both paths (connections, stream files) outside the timing.
	_, _ = load(b, directSender(r.js), benchEvents(200), senders, 0)
	_, _ = load(b, intakeSender(b, r.intake, senders), benchEvents(200), senders, 0)

	// Senders are made when their run starts: the intake closes a
	// connection that sends nothing within --read-header-timeout.
	direct := func(*testing.B) sender { return directSender(r.js) }
	viaIntake := func(b *testing.B) sender { return intakeSender(b, r.intake, senders) }
	cases := []struct {
		name string
		send func(*testing.B) sender
		rate float64
	}{
		{"direct", direct, 0},
		{"intake", viaIntake, 0},
		{"direct-500rps", direct, 500},
		{"intake-500rps", viaIntake, 500},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			bodies := benchEvents(b.N)
			send := c.send(b)
			b.ResetTimer()
			perSecond, lat := load(b, send, bodies, senders, c.rate)
			b.StopTimer()
			report(b, perSecond, lat)
		})
	}
}
