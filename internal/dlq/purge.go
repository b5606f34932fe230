package dlq

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"
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
	ls, err := List(ctx, js, o.Filter)
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
	s, err := dlqStream(ctx, js)
	if err != nil {
		return r, err
	}
	for i, l := range ls {
		if ctx.Err() != nil {
			r.NotTried = ls[i:]
			break
		}
		switch err := s.DeleteMsg(ctx, l.Seq); {
		case err == nil:
			r.Done = append(r.Done, l)
		case isGone(err):
			r.Gone = append(r.Gone, l)
		default:
			r.Failed = append(r.Failed, Failure{l, err})
		}
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
