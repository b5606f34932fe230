package dlq_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/broker/brokertest"
	"github.com/guestflow/guestflow/internal/dlq"
	"github.com/guestflow/guestflow/internal/worker"
)

// BenchmarkList10k times List over a GUESTFLOW_DLQ of 10,000 dead letters
// (a big backlog after an outage), all of them and one step's quarter, on
// loopback and through a link with a round trip of 2ms (a broker in the
// same region), where waiting for replies is what costs. requests/op
// counts the messages the client sent per List.
//
//	go test -run '^$' -bench 'BenchmarkList10k/loopback' -benchtime 20x ./internal/dlq/
//	go test -run '^$' -bench 'BenchmarkList10k/rtt' -benchtime 3x ./internal/dlq/
func BenchmarkList10k(b *testing.B) {
	url := brokertest.URL(b)
	direct := brokertest.JetStream(b, url)
	if err := worker.EnsureStreams(b.Context(), direct, worker.StreamOptions{}); err != nil {
		b.Fatal(err)
	}
	fill(b, direct, 10_000)
	for _, link := range []struct {
		name string
		js   jetstream.JetStream
	}{
		{"loopback", direct},
		{"rtt=2ms", brokertest.JetStream(b, slowLink(b, url, time.Millisecond))},
	} {
		b.Run(link.name, func(b *testing.B) {
			for _, bc := range []struct {
				name string
				f    dlq.Filter
				want int
			}{
				{"all", dlq.Filter{}, 10_000},
				{"step=license", dlq.Filter{Steps: []string{"license"}}, 2_500},
			} {
				b.Run(bc.name, func(b *testing.B) {
					nc := link.js.Conn()
					sent := nc.Stats().OutMsgs
					for b.Loop() {
						ls, err := dlq.List(b.Context(), link.js, bc.f)
						if err != nil {
							b.Fatal(err)
						}
						if len(ls) != bc.want {
							b.Fatalf("listed %d dead letters, want %d", len(ls), bc.want)
						}
					}
					b.ReportMetric(float64(nc.Stats().OutMsgs-sent)/float64(b.N), "requests/op")
				})
			}
		})
	}
}

// fill stores n dead letters shaped as the worker runtime shapes them,
// the four steps in turn, each with its own onboarding.
func fill(b testing.TB, js jetstream.JetStream, n int) {
	b.Helper()
	kinds := []letter{
		{step: "invite", reason: "invalid_event"},
		{step: "license", reason: "no_license_seats"},
		{step: "role", reason: "unknown_role", status: 404},
		{step: "notify", reason: "graph_error", status: 503},
	}
	for i := range n {
		l := kinds[i%len(kinds)]
		l.onboarding = fmt.Sprintf("ob-%05d", i)
		l.failedAt = base.Add(time.Duration(i) * time.Second)
		m := deadLetter(b, l)
		m.Header.Set(worker.HeaderOriginalSequence, strconv.Itoa(i+1))
		m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("dlq:%s:%d", l.step, i+1))
		if _, err := js.PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 || i == n-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(30 * time.Second):
				b.Fatal("filling the DLQ stream timed out")
			}
		}
	}
	s, err := js.Stream(b.Context(), worker.DLQStream)
	if err != nil {
		b.Fatal(err)
	}
	if got := s.CachedInfo().State.Msgs; got != uint64(n) {
		b.Fatalf("the DLQ stream holds %d dead letters, want %d", got, n)
	}
}

// BenchmarkPurge10k times Purge of 10,000 dead letters, each run on a
// stream filled anew (not timed), on loopback and through a link with a
// round trip of 2ms: every letter listed is deleted.
//
//	go test -run '^$' -bench BenchmarkPurge10k -benchtime 3x ./internal/dlq/
func BenchmarkPurge10k(b *testing.B) {
	benchFilled(b, "deleted", func(js jetstream.JetStream) (int, error) {
		r, err := dlq.Purge(b.Context(), js, dlq.PurgeOptions{}, io.Discard)
		return len(r.Done), err
	})
}

// benchFilled times op on a DLQ stream filled anew with 10,000 dead
// letters before each run (not timed), on loopback and through a link
// with a round trip of 2ms, and reports the requests op sent. op returns
// how many letters it handled, which must be all of them.
func benchFilled(b *testing.B, handled string, op func(jetstream.JetStream) (int, error)) {
	url := brokertest.URL(b)
	direct := brokertest.JetStream(b, url)
	for _, link := range []struct {
		name string
		js   jetstream.JetStream
	}{
		{"loopback", direct},
		{"rtt=2ms", brokertest.JetStream(b, slowLink(b, url, time.Millisecond))},
	} {
		b.Run(link.name, func(b *testing.B) {
			nc := link.js.Conn()
			var sent uint64
			for b.Loop() {
				b.StopTimer()
				if err := direct.DeleteStream(b.Context(), worker.DLQStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
					b.Fatal(err)
				}
				if err := worker.EnsureStreams(b.Context(), direct, worker.StreamOptions{}); err != nil {
					b.Fatal(err)
				}
				fill(b, direct, 10_000)
				before := nc.Stats().OutMsgs
				b.StartTimer()
				n, err := op(link.js)
				if err != nil {
					b.Fatal(err)
				}
				if n != 10_000 {
					b.Fatalf("%s %d dead letters, want 10000", handled, n)
				}
				sent += nc.Stats().OutMsgs - before
			}
			b.ReportMetric(float64(sent)/float64(b.N), "requests/op")
		})
	}
}

// slowLink is a loopback TCP proxy to the NATS server at url that holds
// every write for oneWay in each direction: a round trip of 2×oneWay,
// without a bandwidth limit. It returns the URL to connect to instead.
func slowLink(tb testing.TB, url string, oneWay time.Duration) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	target := strings.TrimPrefix(url, "nats://")
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			tb.Cleanup(func() { client.Close(); server.Close() })
			go delayed(server, client, oneWay)
			go delayed(client, server, oneWay)
		}
	}()
	return "nats://" + ln.Addr().String()
}

// delayed copies from src to dst, each chunk oneWay after it was read.
func delayed(dst io.WriteCloser, src io.Reader, oneWay time.Duration) {
	type chunk struct {
		due  time.Time
		data []byte
	}
	q := make(chan chunk, 4096)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 64*1024)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{time.Now().Add(oneWay), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	defer dst.Close()
	for c := range q {
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.data); err != nil {
			return
		}
	}
}

// BenchmarkReplay10k times ReplayMatching of 10,000 dead letters without a
// rate limit (--rate 0), each run on a DLQ stream filled anew (not timed),
// on loopback and through a link with a round trip of 2ms. A replay waits
// for its PubAck before it removes the letter, by design, so what is left
// to save is the requests around it.
//
//	go test -run '^$' -bench BenchmarkReplay10k -benchtime 1x ./internal/dlq/
func BenchmarkReplay10k(b *testing.B) {
	benchFilled(b, "replayed", func(js jetstream.JetStream) (int, error) {
		r, err := dlq.ReplayMatching(b.Context(), js, dlq.ReplayOptions{}, io.Discard)
		return len(r.Done), err
	})
}
