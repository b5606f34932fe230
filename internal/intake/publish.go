package intake

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// publish stores msgs on guestflow.user.joined with Nats-Msg-Id = the
// event id and waits for every PubAck. Any failure is an error, so no
// event the broker did not confirm is ever answered 202. A connection that
// is down fails at once rather than queueing in the reconnect buffer.
func (s *Server) publish(ctx context.Context, msgs []message) ([]Accepted, error) {
	if !s.nc.IsConnected() {
		return nil, fmt.Errorf("not connected to NATS (%s)", s.nc.Status())
	}
	ctx, cancel := context.WithTimeout(ctx, s.o.PublishTimeout)
	defer cancel()
	futures, err := s.group.publish(s.js, msgs)
	if err != nil {
		return nil, err
	}
	out := make([]Accepted, len(msgs))
	var errs []error
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			out[i] = Accepted{OnboardingID: msgs[i].ev.ID(), Duplicate: ack.Duplicate}
		case err := <-f.Err():
			errs = append(errs, fmt.Errorf("event %d: %w", i, err))
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the PubAck: %w", context.Cause(ctx))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// groupPublisher hands the events of requests in flight to the broker
// together (group commit): the first request to arrive leads, lets the
// others that are ready to publish join it, and publishes them all
// asynchronously, so that one write to the connection carries them and
// the PubAcks come back together. Each request then waits for its own
// PubAcks. It has no goroutine of its own: the leader does the work, and
// with nothing else in flight it publishes at once.
type groupPublisher struct {
	mu      sync.Mutex
	queue   []*pending
	leading bool
}

// pending is one request's part of a group.
type pending struct {
	msgs    []message
	futures []jetstream.PubAckFuture
	err     error
	done    chan struct{}
}

func (g *groupPublisher) publish(js jetstream.JetStream, msgs []message) ([]jetstream.PubAckFuture, error) {
	p := &pending{msgs: msgs, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, p)
	if g.leading {
		g.mu.Unlock()
		<-p.done
		return p.futures, p.err
	}
	g.leading = true
	g.mu.Unlock()
	// Let the requests that are runnable get as far as joining.
	runtime.Gosched()
	for {
		g.mu.Lock()
		batch := g.queue
		g.queue = nil
		if len(batch) == 0 {
			g.leading = false
			g.mu.Unlock()
			return p.futures, p.err
		}
		g.mu.Unlock()
		for _, q := range batch {
			q.futures, q.err = publishAsync(js, q.msgs)
			close(q.done)
		}
	}
}

func publishAsync(js jetstream.JetStream, msgs []message) ([]jetstream.PubAckFuture, error) {
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		msg := &nats.Msg{Subject: events.SubjectJoined, Header: nats.Header(m.header), Data: m.body}
		f, err := js.PublishMsgAsync(msg, jetstream.WithMsgID(m.ev.ID()), jetstream.WithExpectStream(worker.Stream))
		if err != nil {
			return nil, err
		}
		futures[i] = f
	}
	return futures, nil
}
