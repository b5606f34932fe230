package index_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/broker/brokertest"
	"github.com/guestflow/guestflow/internal/index"
)

// BenchmarkAdd files messages as the workers of a pipeline do, against
// the embedded broker: an onboarding's five messages (joined, invited,
// licensed, role_assigned, onboarded) are each added by the step that
// publishes it and the step that receives it, eight Adds, the joined
// event by its receiver only and the onboarded one by its publisher only.
// Every onboarding has an id and an address of its own.
//
// Besides ns/op and allocs/op (which include the embedded broker's, in the
// same process) it reports msgs/op, the messages the writer sends to the
// broker per Add (each a request answered by the broker), and cpu-ns/op,
// the process's CPU time per Add, broker included, where the platform
// says.
func BenchmarkAdd(b *testing.B) {
	nc, err := nats.Connect(brokertest.URL(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	w, err := index.Open(b.Context(), js, index.Options{TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	// Which message of its onboarding each of the eight Adds files.
	steps := []uint64{0, 1, 1, 2, 2, 3, 3, 4}
	ms := make([]message, b.N/len(steps)+1)
	for i := range ms {
		ms[i] = joined(b, fmt.Sprintf("ob-%d", i), fmt.Sprintf("guest-%d@fabrikam.example", i))
	}
	ctx := b.Context()
	b.ReportAllocs()
	out, cpu := nc.Stats().OutMsgs, cpuTime()
	b.ResetTimer()
	for i := range b.N {
		o, s := i/len(steps), i%len(steps)
		m := ms[o]
		if err := w.Add(ctx, uint64(o*5)+steps[s]+1, m.subject, m.header, m.body); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(nc.Stats().OutMsgs-out)/float64(b.N), "msgs/op")
	if c := cpuTime(); c > 0 {
		b.ReportMetric(float64(c-cpu)/float64(b.N), "cpu-ns/op")
	}
}
