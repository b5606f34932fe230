package worker

import (
	"context"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/guestflow/guestflow/internal/index"
	"github.com/guestflow/guestflow/internal/provision"
)

// indexTimeout bounds one message's index writes. The index only speeds up
// `guestflow status`; it must not hold an onboarding.
const indexTimeout = 2 * time.Second

// indexer files the messages a runner handles in GUESTFLOW_INDEX (package
// index): each event it publishes once the stream has stored it, and each
// input when it is delivered, unless a step published it (and filed it
// then: filedByPublisher). An input may come from anywhere — an HR
// system, `guestflow dlq replay` — and filing a message twice changes
// nothing, but it costs two requests to the broker: four of an
// onboarding's nine filings when every receiver filed its input again.
// The bucket is opened on first use.
type indexer struct {
	mu sync.Mutex
	w  *index.Writer
}

// index files the message stored at seq. A failure is logged and counted
// (Stats.IndexFailures), and the delivery goes on: status then finds the
// message by reading the stream instead, if the index has nothing for the
// query, or with --scan.
func (w *runner) index(ctx context.Context, seq uint64, subject string, header map[string][]string, body []byte) {
	w.file(ctx, seq, func(ctx context.Context, iw *index.Writer) error { return iw.Add(ctx, seq, subject, header, body) })
}

// indexEvent files the message stored at seq, decoded as ev, as index
// does without decoding it again.
func (w *runner) indexEvent(ctx context.Context, seq uint64, ev event.Event) {
	w.file(ctx, seq, func(ctx context.Context, iw *index.Writer) error { return iw.AddEvent(ctx, seq, ev) })
}

// file runs add, which files the message stored at seq, on the index
// within indexTimeout, and logs and counts its failure.
func (w *runner) file(ctx context.Context, seq uint64, add func(context.Context, *index.Writer) error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), indexTimeout)
	defer cancel()
	iw, err := w.ix.writer(ctx, w)
	if err == nil {
		err = add(ctx, iw)
	}
	if err != nil {
		w.o.Stats.IndexFailures.Add(1)
		w.log.Warn("indexing a message for guestflow status failed; the message is left out of the index", "seq", seq, "err", provision.Denied(w.js.Conn(), err))
	}
}

// writer opens the index on first use, and again after a failed open.
func (ix *indexer) writer(ctx context.Context, w *runner) (*index.Writer, error) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.w != nil {
		return ix.w, nil
	}
	iw, err := index.Open(ctx, w.js, index.Options{
		// The stream's MaxAge as EnsureStreams sets it.
		TTL:       w.o.Streams.EventMaxAge(),
		Replicas:  w.o.Streams.Replicas,
		Recreated: func() { w.recreated("key-value bucket " + index.Bucket) },
	})
	if err != nil {
		return nil, err
	}
	ix.w = iw
	return iw, nil
}

// filedByPublisher says whether the message with header h was published
// by a step, which filed it in the index once the stream had stored it
// (runner.publish): only a step's publish sets Guestflow-Attempts on an
// event, and `guestflow dlq replay` drops every Guestflow- header, so a
// replayed input is filed by its receiver. A step that died between the
// stream's acknowledgement and the index write leaves its event out of
// the index, as any failed index write does: status finds it with --scan.
func filedByPublisher(h nats.Header) bool {
	return len(h.Values(HeaderAttempts)) > 0
}
