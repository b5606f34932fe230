package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/worker"
)

// ErrNoStream means no worker has run yet against this broker: workers
// create GUESTFLOW_DLQ at start.
var ErrNoStream = errors.New("no dead letters yet: the stream " + worker.DLQStream + " does not exist; start a worker first")

// List returns the dead letters that match f, in stream order. Without
// explicit sequences it walks the stream with "next message at or after"
// reads, so the gaps that replays and purges leave cost nothing. An explicit
// sequence that is not (or no longer) in the stream is an error naming it.
func List(ctx context.Context, js jetstream.JetStream, f Filter) ([]Letter, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	s, err := dlqStream(ctx, js)
	if err != nil {
		return nil, err
	}
	if len(f.Seqs) > 0 {
		return bySeq(ctx, s, f)
	}
	subject := worker.DLQSubjects
	if len(f.Steps) == 1 {
		subject = worker.DLQPrefix + f.Steps[0]
	}
	var out []Letter
	for seq := max(s.CachedInfo().State.FirstSeq, 1); ; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s at %d: %w", worker.DLQStream, seq, err)
		}
		if l := Parse(m); f.Match(l) {
			out = append(out, l)
		}
		seq = m.Sequence + 1
	}
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
