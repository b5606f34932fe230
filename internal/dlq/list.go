package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/worker"
)

// ErrNoStream means no worker has run yet against this broker: workers
// create GUESTFLOW_DLQ at start.
var ErrNoStream = errors.New("no dead letters yet: the stream " + worker.DLQStream + " does not exist; start a worker first")

// List returns the dead letters that match f, in stream order, up to the
// last one stored when List began: dead letters stored meanwhile are left
// out, so List ends even while workers go on dead-lettering. Without
// explicit sequences it reads the stream in batches (see scan). An explicit
// sequence that is not (or no longer) in the stream is an error naming it.
func List(ctx context.Context, js jetstream.JetStream, f Filter) ([]Letter, error) {
	_, ls, err := list(ctx, js, f)
	return ls, err
}

// list is List, with the stream it read for those that go on to change it.
func list(ctx context.Context, js jetstream.JetStream, f Filter) (jetstream.Stream, []Letter, error) {
	if err := f.Validate(); err != nil {
		return nil, nil, err
	}
	s, err := dlqStream(ctx, js)
	if err != nil {
		return nil, nil, err
	}
	var ls []Letter
	if len(f.Seqs) > 0 {
		ls, err = bySeq(ctx, s, f)
	} else {
		ls, err = scan(ctx, s, f)
	}
	return s, ls, err
}

// Tuning of scan; variables so that tests can make the corner cases
// happen.
var (
	// listBatch is how many dead letters one pull request asks for. The
	// client asks for the next half batch while the first is read, so the
	// stream flows without a round trip per letter; a batch of big
	// letters (up to the broker's max payload each) is what it buffers.
	listBatch = 1000
	// listIdle is how long scan waits for the next letter before it asks
	// the server whether any is left: one deleted while scan runs (a
	// concurrent replay or purge) never comes.
	listIdle = time.Second
	// listStalls is how many idle waits in a row, with letters still
	// pending on the server, scan sits out before it gives up.
	listStalls = 10
	// afterRead, when set, is called with each sequence scan reads.
	afterRead func(seq uint64)
)

// consumerInactive is when the server removes a consumer of scan that was
// not deleted (the process died): it is ephemeral and kept in memory, so
// it never outlives that, nor a restart of the server.
const consumerInactive = 30 * time.Second

// scan reads the stream up to its last message when List began with an
// ordered consumer: ephemeral, in memory, without acks, filtered to the
// steps' subjects, and deleted when scan returns. The ordered consumer
// notices a lost or reordered delivery and resumes after the last letter
// read, so nothing is skipped or read twice. Gaps that replays and purges
// leave cost nothing, and a letter deleted before scan reaches it is not
// listed.
func scan(ctx context.Context, s jetstream.Stream, f Filter) ([]Letter, error) {
	state := s.CachedInfo().State
	if state.Msgs == 0 {
		return nil, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects(f), InactiveThreshold: consumerInactive,
		// Give up when the consumer cannot be re-created (the server
		// is gone) instead of retrying for ever inside Next.
		MaxResetAttempts: 3,
	})
	if err != nil {
		return nil, readErr(err)
	}
	info := c.CachedInfo()
	if info.NumPending == 0 {
		deleteConsumer(ctx, s, c)
		return nil, nil
	}
	it, err := c.Messages(jetstream.PullMaxMessages(listBatch))
	if err != nil {
		deleteConsumer(ctx, s, c)
		return nil, readErr(err)
	}
	defer func() {
		it.Stop() // first: a consumer deleted under the iterator is re-created
		deleteConsumer(ctx, s, c)
	}()
	var out []Letter
	// The last letter read, and which delivery of which consumer it was:
	// the ordered consumer replaces its consumer after a lost delivery.
	var read uint64
	consumer, delivered := info.Name, info.Delivered.Consumer
	for stalls := 0; ; {
		wait, cancel := context.WithTimeout(ctx, listIdle)
		m, err := it.Next(jetstream.NextContext(wait))
		cancel()
		if err != nil {
			if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
				return nil, readErr(err)
			}
			now, err := c.Info(ctx)
			if err != nil {
				return nil, readErr(err)
			}
			// Nothing pending and nothing delivered that was not read
			// (else part of a batch is still on its way).
			if now.NumPending == 0 && (now.Delivered.Consumer == 0 ||
				now.Name == consumer && now.Delivered.Consumer <= delivered) {
				return out, nil
			}
			if stalls++; stalls >= listStalls {
				return nil, fmt.Errorf("reading %s: no dead letter arrived for %v after sequence %d, though the server holds %d more or has sent them; try again",
					worker.DLQStream, time.Duration(stalls)*listIdle, read, now.NumPending)
			}
			continue
		}
		stalls = 0
		meta, err := m.Metadata()
		if err != nil {
			return nil, readErr(err)
		}
		if meta.Sequence.Stream > state.LastSeq {
			return out, nil
		}
		read = meta.Sequence.Stream
		consumer, delivered = meta.Consumer, meta.Sequence.Consumer
		if l := Parse(&jetstream.RawStreamMsg{
			Subject: m.Subject(), Sequence: read, Header: m.Headers(), Data: m.Data(), Time: meta.Timestamp.UTC(),
		}); f.Match(l) {
			out = append(out, l)
		}
		if afterRead != nil {
			afterRead(read)
		}
		if meta.NumPending == 0 || read >= state.LastSeq {
			return out, nil
		}
	}
}

// subjects are the subjects that hold f's steps: guestflow.dlq.<step>
// each, or all of guestflow.dlq.>.
func subjects(f Filter) []string {
	if len(f.Steps) == 0 {
		return []string{worker.DLQSubjects}
	}
	var out []string
	for _, step := range f.Steps {
		out = append(out, worker.DLQPrefix+step)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// deleteConsumer removes scan's consumer now rather than when it has been
// inactive for consumerInactive, even when ctx has ended. A failure costs
// nothing but that wait.
func deleteConsumer(ctx context.Context, s jetstream.Stream, c jetstream.Consumer) {
	info := c.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = s.DeleteConsumer(ctx, info.Name)
}

func readErr(err error) error {
	return fmt.Errorf("reading %s: %w", worker.DLQStream, err)
}

// bySeq reads explicit sequences; those that exist but do not pass the
// rest of the filter are left out, like any other non-match.
func bySeq(ctx context.Context, s jetstream.Stream, f Filter) ([]Letter, error) {
	seqs := slices.Clone(f.Seqs)
	slices.Sort(seqs)
	var out []Letter
	var missing []string
	for _, seq := range seqs {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			missing = append(missing, strconv.FormatUint(seq, 10))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading dead letter %d: %w", seq, err)
		}
		if l := Parse(m); f.Match(l) {
			out = append(out, l)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no dead letter %s in %s (already replayed or purged? 'guestflow dlq list' shows what is there)",
			strings.Join(missing, ", "), worker.DLQStream)
	}
	return out, nil
}

func dlqStream(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, worker.DLQStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, ErrNoStream
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", worker.DLQStream, err)
	}
	return s, nil
}
