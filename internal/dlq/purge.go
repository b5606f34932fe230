package dlq

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
)

// ErrCancelled is returned when the operator did not confirm a purge.
var ErrCancelled = errors.New("cancelled: nothing was deleted")

// PurgeOptions select the dead letters to delete.
type PurgeOptions struct {
	Filter Filter
	// Confirm is asked with the number of matching dead letters before
	// anything is deleted; nil means yes.
	Confirm func(n int) (bool, error)
}

// Purge deletes the dead letters o.Filter selects, after o.Confirm agrees.
// An empty filter means every dead letter, and is still confirmed. Dead
// letters that arrive after the listing are never deleted.
func Purge(ctx context.Context, js jetstream.JetStream, o PurgeOptions, w io.Writer) (Report, error) {
	s, ls, err := list(ctx, js, o.Filter)
	if err != nil {
		return Report{}, err
	}
	r := Report{Matched: ls}
	if len(ls) == 0 {
		fmt.Fprintf(w, "no dead letters match (%s); nothing to delete\n", o.Filter)
		return r, nil
	}
	if o.Confirm != nil {
		ok, err := o.Confirm(len(ls))
		if err != nil {
			return r, err
		}
		if !ok {
			return r, ErrCancelled
		}
	}
	errs, tried := deleteAll(ctx, s, ls)
	for i, l := range ls[:tried] {
		switch err := errs[i]; {
		case err == nil:
			r.Done = append(r.Done, l)
		case isGone(err):
			r.Gone = append(r.Gone, l)
		default:
			r.Failed = append(r.Failed, Failure{l, err})
		}
	}
	if tried < len(ls) {
		r.NotTried = ls[tried:]
	}
	for _, f := range r.Failed {
		fmt.Fprintf(w, "failed: dead letter %d: %v\n", f.Letter.Seq, f.Err)
	}
	fmt.Fprintf(w, "deleted %d of %s", len(r.Done), count(len(ls)))
	if len(r.Gone) > 0 {
		fmt.Fprintf(w, "; %d already gone (%s)", len(r.Gone), seqs(r.Gone))
	}
	fmt.Fprintln(w)
	return r, r.err(ctx, "delete")
}

// purgeInFlight is how many deletes Purge has on the wire at once: one
// request per dead letter is what the API offers, and waiting for each
// reply before sending the next would make purging a big backlog cost a
// round trip per letter.
const purgeInFlight = 32

// deleteAll deletes the letters, purgeInFlight at a time, until ctx ends.
// errs[i] is the outcome of deleting ls[i], for the first tried letters.
func deleteAll(ctx context.Context, s jetstream.Stream, ls []Letter) (errs []error, tried int) {
	errs = make([]error, len(ls))
	var g errgroup.Group
	g.SetLimit(purgeInFlight)
	for tried = 0; tried < len(ls) && ctx.Err() == nil; tried++ {
		i := tried
		g.Go(func() error {
			errs[i] = s.DeleteMsg(ctx, ls[i].Seq)
			return nil
		})
	}
	_ = g.Wait()
	return errs, tried
}
