package timeline_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/broker/brokertest"
	"github.com/guestflow/guestflow/internal/index"
	"github.com/guestflow/guestflow/internal/timeline"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// BenchmarkStatus times one `guestflow status` lookup, by address and by
// onboarding id, through the index and by a scan of the whole stream,
// against a GUESTFLOW stream filled with GUESTFLOW_BENCH_ONBOARDINGS
// onboardings (1000 unless set) of GUESTFLOW_BENCH_EVENTS events each
// (joined to onboarded: 1 to 5; 5 unless set), each person with one
// onboarding. The fill stores every event and files it in the index as a
// worker does (index.Writer.Add after the PubAck), four at a time, and
// logs how long it took (-v shows it). msgs/op is what the status connection received:
// key-value and stream reads, API replies, a scan's deliveries.
//
//	GUESTFLOW_BENCH_ONBOARDINGS=100000 go test -run '^$' -bench BenchmarkStatus ./internal/timeline/
func BenchmarkStatus(b *testing.B) {
	n := envInt(b, "GUESTFLOW_BENCH_ONBOARDINGS", 1000)
	per := envInt(b, "GUESTFLOW_BENCH_EVENTS", 5)
	url := brokertest.URL(b)
	js := brokertest.JetStream(b, url)
	if err := worker.EnsureStreams(context.Background(), js, worker.StreamOptions{}); err != nil {
		b.Fatal(err)
	}
	w, err := index.Open(context.Background(), js, index.Options{TTL: worker.DefaultMaxAge})
	if err != nil {
		b.Fatal(err)
	}
	began := time.Now()
	stored := fill(b, js, w, n, per)
	b.Logf("filled %d onboardings, %d messages, each stored and indexed, in %v", n, stored, time.Since(began).Round(time.Millisecond))
	// The steps' consumers, caught up, as a status lookup finds them
	// while the workers keep up: it asks each what it has yet to deliver.
	for _, c := range []struct{ name, subject string }{
		{"invite", events.SubjectJoined}, {"license", events.SubjectInvited},
		{"role", events.SubjectLicensed}, {"notify", events.SubjectRoleAssigned},
	} {
		if _, err := js.CreateConsumer(context.Background(), worker.Stream, jetstream.ConsumerConfig{
			Durable: c.name, FilterSubject: c.subject, AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverNewPolicy,
		}); err != nil {
			b.Fatal(err)
		}
	}

	status := brokertest.JetStream(b, url)
	who := n / 2
	for _, q := range []struct{ name, query string }{
		{"email", fmt.Sprintf("P%d@Fabrikam.com", who)},
		{"id", fmt.Sprintf("bench-%d", who)},
	} {
		for _, scan := range []bool{false, true} {
			name := q.name + "/index"
			if scan {
				name = q.name + "/scan"
			}
			b.Run(name, func(b *testing.B) {
				before := status.Conn().Stats().InMsgs
				for b.Loop() {
					obs, err := timeline.Status(b.Context(), status, q.query, timeline.Options{Scan: scan}, io.Discard)
					if err != nil || len(obs) != 1 || len(obs[0].Steps) != per {
						b.Fatalf("status %s: %v %+v", q.query, err, obs)
					}
				}
				b.ReportMetric(float64(status.Conn().Stats().InMsgs-before)/float64(b.N), "msgs/op")
			})
		}
	}
}

// fill stores n onboardings of per events each and indexes every message,
// with four writers, and returns how many messages it stored.
func fill(b *testing.B, js jetstream.JetStream, w *index.Writer, n, per int) int64 {
	var next, stored atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			ctx := context.Background()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				for _, m := range flow(b, fmt.Sprintf("bench-%d", i), fmt.Sprintf("p%d@fabrikam.com", i), per) {
					ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: m.subject, Header: m.header, Data: m.body})
					if err != nil {
						b.Error(err)
						return
					}
					if err := w.Add(ctx, ack.Sequence, m.subject, m.header, m.body); err != nil {
						b.Error(err)
						return
					}
					stored.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return stored.Load()
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}
