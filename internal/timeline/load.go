package timeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/dlq"
	"github.com/guestflow/guestflow/internal/worker"
)

// ErrNoStream means no worker has run yet against this broker: workers
// create GUESTFLOW at start.
var ErrNoStream = errors.New("no onboardings yet: the stream " + worker.Stream + " does not exist; start a worker first")

// stallTimeout bounds the wait for a message the stream said it had; one
// that expired meanwhile (MaxAge) never comes.
const stallTimeout = 10 * time.Second

// Load reads the onboardings that answer query (an onboarding id or an
// email address, see Matches) from the GUESTFLOW stream and their dead
// letters from GUESTFLOW_DLQ. Dead letters outlive events (the event log
// keeps 30 days, dead letters stay until replayed or purged), so a dead
// letter is found by its own onboarding id and email too.
func Load(ctx context.Context, js jetstream.JetStream, query string) ([]Onboarding, error) {
	query = strings.TrimSpace(query)
	if query == "" {
		return nil, errors.New("say whose timeline: an email address or an onboarding id")
	}
	recs, err := scan(ctx, js, func(r Record) bool { return Matches(query, r.OnboardingID, r.Email) })
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, r := range recs {
		ids[r.OnboardingID] = true
	}
	letters, err := dlq.List(ctx, js, dlq.Filter{})
	if errors.Is(err, dlq.ErrNoStream) {
		letters = nil
	} else if err != nil {
		return nil, err
	}
	var mine []dlq.Letter
	for _, l := range letters {
		id := letterIdentity(l)
		if ids[id.onboardingID] || Matches(query, id.onboardingID, id.email) {
			mine = append(mine, l)
		}
	}
	return Build(recs, mine), nil
}

// scan reads the whole GUESTFLOW stream with an ordered consumer and keeps
// the records keep accepts. The subjects carry no user, so there is no
// narrower read.
func scan(ctx context.Context, js jetstream.JetStream, keep func(Record) bool) ([]Record, error) {
	s, err := js.Stream(ctx, worker.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, ErrNoStream
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", worker.Stream, err)
	}
	state := s.CachedInfo().State
	if state.Msgs == 0 {
		return nil, nil
	}
	c, err := js.OrderedConsumer(ctx, worker.Stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", worker.Stream, err)
	}
	it, err := c.Messages(jetstream.PullMaxMessages(500))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", worker.Stream, err)
	}
	defer it.Stop()
	var out []Record
	for {
		wait, cancel := context.WithTimeout(ctx, stallTimeout)
		m, err := it.Next(jetstream.NextContext(wait))
		cancel()
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) && drained(ctx, s) {
				return out, nil
			}
			return nil, fmt.Errorf("reading %s: %w", worker.Stream, err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", worker.Stream, err)
		}
		if r := NewRecord(meta.Sequence.Stream, m.Subject(), meta.Timestamp, m.Headers(), m.Data()); keep(r) {
			out = append(out, r)
		}
		if meta.NumPending == 0 || meta.Sequence.Stream >= state.LastSeq {
			return out, nil
		}
	}
}

// drained reports whether the stream has emptied since the scan began.
func drained(ctx context.Context, s jetstream.Stream) bool {
	info, err := s.Info(ctx)
	return err == nil && info.State.Msgs == 0
}
