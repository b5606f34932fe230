package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The streams, the lease bucket and the consumer are shared state that an
// operator (or a script cleaning up) can delete while workers run. Creating
// them only at start would leave every running worker retrying against
// nothing, or dead-lettering everything, until someone restarts it; so the
// runtime notices the deletion where it uses the thing, creates it again
// and retries once.

// missing reports whether err says that the stream behind an operation is
// not there. nats.go v1.55 says it in several ways: a publish, including a
// key-value write, that no stream listens for fails with
// ErrNoStreamResponse; a key-value read (a direct get) with
// nats.ErrNoResponders; API calls with ErrStreamNotFound or, through the
// key-value API, ErrBucketNotFound. A broker that is only restarting says
// the same for a moment, which is why re-creation only creates what a
// lookup confirms absent, and never updates what is there.
func missing(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound)
}

// ensureStream creates stream name with the settings of EnsureStreams (o)
// if it does not exist, and reports whether it did.
//
// A re-created event stream does not start again at sequence 1: the
// sequence of an input names its lease (GUESTFLOW_LEASES keeps keys for a
// day) and its dead letter's Nats-Msg-Id (deduplicated for two minutes),
// and a new input under an old input's sequence would inherit its failed
// attempts, or have its dead letter dropped as a duplicate of the old one
// and be terminated with nothing stored. It starts at the current Unix
// time in nanoseconds instead, beyond any sequence an earlier stream
// could have reached.
func ensureStream(ctx context.Context, js jetstream.JetStream, name string, o StreamOptions) (bool, error) {
	_, err := js.Stream(ctx, name)
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, err
	}
	for _, cfg := range StreamConfigs(o) {
		if cfg.Name != name {
			continue
		}
		if name == Stream {
			cfg.FirstSeq = uint64(time.Now().UnixNano())
		}
		_, err := js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return false, nil // another worker was first
		}
		return err == nil, err
	}
	return false, fmt.Errorf("no stream %s in the contract", name)
}

// restore creates stream name again if it was deleted, counting and
// logging the re-creation.
func (w *runner) restore(ctx context.Context, name string) error {
	created, err := ensureStream(ctx, w.js, name, w.o.Streams)
	if err != nil {
		return fmt.Errorf("stream %s: %w", name, err)
	}
	if created {
		w.recreated("stream " + name)
	}
	return nil
}

func (w *runner) recreated(what string) {
	w.o.Stats.Recreated.Add(1)
	w.log.Warn(what + " was deleted under the running worker; created it again")
}
