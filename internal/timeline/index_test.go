package timeline_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
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

// indexed is a broker with the streams and the index, and a second
// connection for status whose traffic can be counted.
type indexed struct {
	t      *testing.T
	js     jetstream.JetStream // the workers'
	status jetstream.JetStream // status's
	w      *index.Writer
}

func newIndexed(t *testing.T) *indexed {
	t.Helper()
	url := brokertest.URL(t)
	js := brokertest.JetStream(t, url)
	if err := worker.EnsureStreams(context.Background(), js, worker.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return &indexed{t: t, js: js, status: brokertest.JetStream(t, url)}
}

// open creates the index, as the first worker that runs does.
func (x *indexed) open() {
	x.t.Helper()
	w, err := index.Open(context.Background(), x.js, index.Options{TTL: worker.DefaultMaxAge})
	if err != nil {
		x.t.Fatal(err)
	}
	x.w = w
}

// store stores msgs and files them as the workers do.
func (x *indexed) store(msgs ...msg) {
	x.t.Helper()
	for _, m := range msgs {
		ack, err := x.js.PublishMsg(context.Background(), &nats.Msg{Subject: m.subject, Header: m.header, Data: m.body})
		if err != nil {
			x.t.Fatal(err)
		}
		if err := x.w.Add(context.Background(), ack.Sequence, m.subject, m.header, m.body); err != nil {
			x.t.Fatal(err)
		}
	}
}

// run is `guestflow status query` as text, and the messages it received.
func (x *indexed) run(query string, scan bool) (string, uint64) {
	x.t.Helper()
	var out bytes.Buffer
	before := x.status.Conn().Stats().InMsgs
	if _, err := timeline.Status(x.t.Context(), x.status, query, timeline.Options{Scan: scan, DirectoryNote: "n/a"}, &out); err != nil {
		x.t.Fatalf("status %s (scan %v): %v", query, scan, err)
	}
	return out.String(), x.status.Conn().Stats().InMsgs - before
}

// same runs query through the index and by a scan, and fails unless both
// print the same; it returns the output and the messages each received.
func (x *indexed) same(query string) (string, uint64, uint64) {
	x.t.Helper()
	viaIndex, n := x.run(query, false)
	scanned, m := x.run(query, true)
	if viaIndex != scanned {
		x.t.Errorf("status %s through the index:\n%s\nby a scan:\n%s", query, viaIndex, scanned)
	}
	return viaIndex, n, m
}

func TestStatusThroughTheIndexReadsOnePersonsEvents(t *testing.T) {
	x := newIndexed(t)
	x.open()
	ana := flow(t, "ob-1", "ana@fabrikam.com", 5)
	liam := flow(t, "ob-2", "liam@contoso.example", 3)
	again := flow(t, "ob-3", "ana@fabrikam.com", 2)
	x.store(ana[0], liam[0], ana[1], liam[1], again[0], again[1], liam[2], ana[2], ana[3], ana[4])
	const others = 300
	for i := range others {
		x.store(flow(t, fmt.Sprintf("other-%d", i), fmt.Sprintf("p%d@fabrikam.com", i), 1)...)
	}
	storeDeadLetter(t, x.js, "license", "no_license_seats", again[1])
	storeDeadLetter(t, x.js, "role", "unknown_role", liam[2])

	for _, q := range []string{"Ana@Fabrikam.com", "ob-2", "ob-3", "p7@fabrikam.com"} {
		out, viaIndex, scanned := x.same(q)
		if q == "Ana@Fabrikam.com" && (!strings.Contains(out, "onboarding ob-1") || !strings.Contains(out, "onboarding ob-3")) {
			t.Errorf("status %s:\n%s", q, out)
		}
		t.Logf("status %s received %d messages through the index, %d by a scan", q, viaIndex, scanned)
		// One or two listings of index keys (a message per key, an
		// event's or an onboarding's), one read per event and the two
		// dead letters, against every message of the stream.
		if viaIndex > 40 || scanned < others {
			t.Errorf("status %s received %d messages through the index, %d by a scan", q, viaIndex, scanned)
		}
	}
}

func TestStatusThroughTheIndexReadsWhatTheIndexCannotKnowYet(t *testing.T) {
	x := newIndexed(t)
	// Before the index: an onboarding stored by an older release.
	store(t, x.js, flow(t, "ob-0", "ana@fabrikam.com", 2)...)
	time.Sleep(10 * time.Millisecond)
	x.open()
	x.store(flow(t, "ob-1", "ana@fabrikam.com", 5)...)
	// The invite step has received every joined event so far.
	c, err := x.js.CreateConsumer(context.Background(), worker.Stream, jetstream.ConsumerConfig{
		Durable: "invite", FilterSubject: events.SubjectJoined, AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.FetchNoWait(10)
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	// Then an HR system publishes another, not delivered yet.
	store(t, x.js, flow(t, "ob-2", "ana@fabrikam.com", 1)...)

	out, _, _ := x.same("ana@fabrikam.com")
	for _, id := range []string{"ob-0", "ob-1", "ob-2"} {
		if !strings.Contains(out, "onboarding "+id+":") {
			t.Errorf("status lacks %s:\n%s", id, out)
		}
	}
}

func TestStatusSkipsIndexedMessagesThatLeftTheStream(t *testing.T) {
	x := newIndexed(t)
	x.open()
	x.store(flow(t, "ob-1", "ana@fabrikam.com", 3)...)
	for i := range 100 {
		x.store(flow(t, fmt.Sprintf("other-%d", i), fmt.Sprintf("p%d@fabrikam.com", i), 1)...)
	}
	s, err := x.js.Stream(context.Background(), worker.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	out, viaIndex, _ := x.same("ob-1")
	if strings.Contains(out, "invite ") || !strings.Contains(out, "license") {
		t.Errorf("status:\n%s", out)
	}
	if viaIndex > 30 {
		t.Errorf("status received %d messages: it scanned instead of skipping the missing one", viaIndex)
	}
}

// TestStatusScansWhenTheIndexHasNoKey: events the workers did not file
// (published before, or their filing failed) are found all the same when
// the index has nothing for the query.
func TestStatusScansWhenTheIndexHasNoKey(t *testing.T) {
	x := newIndexed(t)
	x.open()
	x.store(flow(t, "ob-1", "liam@contoso.example", 2)...)
	store(t, x.js, flow(t, "ob-2", "ana@fabrikam.com", 2)...)
	out, _, _ := x.same("ana@fabrikam.com")
	if !strings.Contains(out, "onboarding ob-2: ana@fabrikam.com") {
		t.Errorf("status:\n%s", out)
	}
}
