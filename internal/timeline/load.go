package timeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/dlq"
	"github.com/guestflow/guestflow/internal/index"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
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
//
// The events are read through the index (package index) when it knows the
// query, and by reading the whole stream when it does not (see lookup).
func Load(ctx context.Context, js jetstream.JetStream, query string) ([]Onboarding, error) {
	return load(ctx, js, query, false)
}

// load is Load; scanAll reads the whole stream even when the index knows
// the query.
func load(ctx context.Context, js jetstream.JetStream, query string, scanAll bool) ([]Onboarding, error) {
	query = strings.TrimSpace(query)
	if query == "" {
		return nil, errors.New("say whose timeline: an email address or an onboarding id")
	}
	keep := func(r Record) bool { return Matches(query, r.OnboardingID, r.Email) }
	var recs []Record
	indexed := false
	if !scanAll {
		recs, indexed = lookup(ctx, js, query, keep)
	}
	if !indexed {
		var err error
		if recs, err = scan(ctx, js, keep); err != nil {
			return nil, err
		}
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

// lookup reads the records of query through the index: the messages the
// index names for the query, by sequence, and the parts of the stream it
// cannot know of yet (unindexed). Every message goes through keep, as in a
// scan, so the index only decides what is read. It reports false when
// there is no index, it has no key for the query, or something cannot be
// read: the caller then scans the whole stream, which finds what the
// index misses (messages whose filing failed) and reports the errors.
func lookup(ctx context.Context, js jetstream.JetStream, query string, keep func(Record) bool) ([]Record, bool) {
	ix, err := index.OpenReader(ctx, js)
	if err != nil {
		return nil, false
	}
	seqs, found, err := ix.Lookup(ctx, query)
	if err != nil || !found {
		return nil, false
	}
	s, err := js.Stream(ctx, worker.Stream)
	if err != nil {
		return nil, false
	}
	first := s.CachedInfo().State.FirstSeq
	seen := map[uint64]bool{}
	var out []Record
	add := func(r Record) {
		if !seen[r.Seq] && keep(r) {
			seen[r.Seq] = true
			out = append(out, r)
		}
	}
	slices.Sort(seqs)
	for _, seq := range slices.Compact(seqs) {
		if seq < first {
			continue // aged out of the stream
		}
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // aged out since, or deleted
		}
		if err != nil {
			return nil, false
		}
		add(NewRecord(m.Sequence, m.Subject, m.Time, m.Header, m.Data))
	}
	spans, err := unindexed(ctx, js, s, ix.Created())
	if err != nil {
		return nil, false
	}
	for _, sp := range spans {
		recs, err := read(ctx, js, s, sp, keep)
		if err != nil {
			return nil, false
		}
		for _, r := range recs {
			add(r)
		}
	}
	return out, true
}

// inputs are the steps' consumers and the subjects they consume.
var inputs = []struct{ consumer, subject string }{
	{"invite", events.SubjectJoined},
	{"license", events.SubjectInvited},
	{"role", events.SubjectLicensed},
	{"notify", events.SubjectRoleAssigned},
}

// unindexed are the parts of the stream the index cannot know of yet,
// which a lookup reads as a scan does:
//
//   - the messages stored before the index was created (an upgrade; a
//     bucket deleted and created again), until they age out of the stream;
//   - the inputs a step's consumer has not delivered yet: a joined event
//     an HR system just published, a replayed dead letter, all of a
//     backlog. The step files them when it receives them; what workers
//     publish is filed as soon as it is stored. A step without a consumer
//     has never run here and files nothing; its inputs are not read.
func unindexed(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, created time.Time) ([]span, error) {
	state := s.CachedInfo().State
	if state.Msgs == 0 {
		return nil, nil
	}
	var out []span
	if created.IsZero() || state.FirstTime.Before(created) {
		out = append(out, span{to: state.LastSeq, before: created})
	}
	for _, in := range inputs {
		c, err := js.Consumer(ctx, worker.Stream, in.consumer)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		// The consumer's count of pending messages lags behind new ones
		// for a moment; the sequences do not.
		delivered := c.CachedInfo().Delivered.Stream
		last, err := s.GetLastMsgForSubject(ctx, in.subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if last.Sequence > delivered {
			out = append(out, span{from: delivered + 1, to: last.Sequence, subject: in.subject})
		}
	}
	return out, nil
}

// scan reads the whole GUESTFLOW stream and keeps the records keep
// accepts. The subjects carry no user, so there is no narrower read
// without the index.
func scan(ctx context.Context, js jetstream.JetStream, keep func(Record) bool) ([]Record, error) {
	s, err := js.Stream(ctx, worker.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, ErrNoStream
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", worker.Stream, err)
	}
	return read(ctx, js, s, span{to: s.CachedInfo().State.LastSeq}, keep)
}

// span is a part of the stream: the messages on subject ("": all) from
// sequence from (0: the first) to sequence to, stopping short at the
// first one stored at or after before (zero: no such bound).
type span struct {
	from, to uint64
	subject  string
	before   time.Time
}

// read reads sp with an ordered consumer and keeps the records keep
// accepts.
func read(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, sp span, keep func(Record) bool) ([]Record, error) {
	if s.CachedInfo().State.Msgs == 0 || sp.from > sp.to {
		return nil, nil
	}
	// The server drops an ordered consumer left behind (a killed status)
	// after InactiveThreshold; a normal end deletes it at once.
	cfg := jetstream.OrderedConsumerConfig{InactiveThreshold: 30 * time.Second}
	if sp.from > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = sp.from
	}
	if sp.subject != "" {
		cfg.FilterSubjects = []string{sp.subject}
	}
	c, err := js.OrderedConsumer(ctx, worker.Stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", worker.Stream, err)
	}
	defer func() {
		if info := c.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = s.DeleteConsumer(dctx, info.Name)
		}
	}()
	it, err := c.Messages(jetstream.PullMaxMessages(500))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", worker.Stream, err)
	}
	defer it.Stop() // before the delete above: deferred calls run last-in first-out
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
		if !sp.before.IsZero() && !meta.Timestamp.Before(sp.before) {
			return out, nil
		}
		if r := NewRecord(meta.Sequence.Stream, m.Subject(), meta.Timestamp, m.Headers(), m.Data()); keep(r) {
			out = append(out, r)
		}
		if meta.NumPending == 0 || meta.Sequence.Stream >= sp.to {
			return out, nil
		}
	}
}

// drained reports whether the stream has emptied since the scan began.
func drained(ctx context.Context, s jetstream.Stream) bool {
	info, err := s.Info(ctx)
	return err == nil && info.State.Msgs == 0
}
