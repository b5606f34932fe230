package dlq_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/dlq"
	"github.com/guestflow/guestflow/internal/worker"
)

// BenchmarkList10k times List over a GUESTFLOW_DLQ of 10,000 dead letters
// (a big backlog after an outage), all of them and one step's quarter.
// requests/op counts the messages the client sent per List: the round
// trips, less those the client pipelines.
//
//	go test -run '^$' -bench BenchmarkList10k -benchtime 20x ./internal/dlq/
func BenchmarkList10k(b *testing.B) {
	js := newJS(b, true)
	fill(b, js, 10_000)
	for _, bc := range []struct {
		name string
		f    dlq.Filter
		want int
	}{
		{"all", dlq.Filter{}, 10_000},
		{"step=license", dlq.Filter{Steps: []string{"license"}}, 2_500},
	} {
		b.Run(bc.name, func(b *testing.B) {
			nc := js.Conn()
			sent := nc.Stats().OutMsgs
			for b.Loop() {
				ls, err := dlq.List(b.Context(), js, bc.f)
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
