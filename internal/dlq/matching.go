package dlq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/guestflow/guestflow/internal/textsafe"
)

// DefaultRate is how many dead letters a replay republishes per second
// unless told otherwise: slow enough that replaying a big backlog does not
// hit Graph's throttling all at once, fast enough for an operator waiting.
const DefaultRate = 10

// ReplayOptions select and pace a replay.
type ReplayOptions struct {
	Filter Filter
	// DryRun lists what would be replayed and changes nothing.
	DryRun bool
	// Rate is replays per second; 0 or less is unlimited.
	Rate float64
	// Progress, when set, is called once per dead letter handled, with the
	// number handled so far and the total.
	Progress func(done, total int)
}

// Failure is a dead letter a replay or purge could not handle, and why.
type Failure struct {
	Letter Letter
	Err    error
}

// Report says what a replay or purge did.
type Report struct {
	// Matched are the dead letters the filter selected.
	Matched []Letter
	// Done are the ones replayed (or deleted); none in a dry run.
	Done []Letter
	// Gone vanished between listing and acting: someone else replayed or
	// purged them. Nothing is lost.
	Gone   []Letter
	Failed []Failure
	// NotTried were still waiting when the context ended.
	NotTried []Letter
}

// ReplayMatching replays every dead letter that o.Filter selects, in stream
// order and at most o.Rate per second, each with Replay (a Nats-Msg-Id of
// its own per dead letter, removed only after the PubAck). It goes on after a failure and returns an
// error naming every dead letter that failed. The letters are listed once,
// before the first replay, so a replay that fails again and comes back as
// a new dead letter is not replayed a second time in the same run.
func ReplayMatching(ctx context.Context, js jetstream.JetStream, o ReplayOptions, w io.Writer) (Report, error) {
	s, ls, err := list(ctx, js, o.Filter)
	if err != nil {
		return Report{}, err
	}
	r := Report{Matched: ls}
	if len(ls) == 0 {
		fmt.Fprintf(w, "no dead letters match (%s); nothing to replay\n", o.Filter)
		return r, nil
	}
	if o.DryRun {
		if err := writePlan(w, ls); err != nil {
			return r, err
		}
		fmt.Fprintf(w, "dry run: %s would be replayed; nothing was changed\n", count(len(ls)))
		return r, nil
	}
	limit := rate.Inf
	if o.Rate > 0 {
		limit = rate.Limit(o.Rate)
	}
	lim := rate.NewLimiter(limit, 1)
	for i, l := range ls {
		if err := lim.Wait(ctx); err != nil {
			r.NotTried = ls[i:]
			break
		}
		switch err := replay(ctx, js, s, l.Seq); {
		case err == nil:
			r.Done = append(r.Done, l)
		case errors.Is(err, jetstream.ErrMsgNotFound):
			r.Gone = append(r.Gone, l)
		default:
			r.Failed = append(r.Failed, Failure{l, err})
		}
		if o.Progress != nil {
			o.Progress(i+1, len(ls))
		}
	}
	for _, f := range r.Failed {
		fmt.Fprintf(w, "failed: dead letter %d: %s\n", f.Letter.Seq, textsafe.Escape(f.Err.Error()))
	}
	fmt.Fprintf(w, "replayed %d of %s", len(r.Done), count(len(ls)))
	if len(r.Gone) > 0 {
		fmt.Fprintf(w, "; %d already gone (%s), replayed or purged by someone else", len(r.Gone), seqs(r.Gone))
	}
	fmt.Fprintln(w)
	return r, r.err(ctx, "replay")
}

// err names what did not happen, or is nil when everything did.
func (r Report) err(ctx context.Context, verb string) error {
	var errs []error
	if len(r.Failed) > 0 {
		var ls []Letter
		for _, f := range r.Failed {
			ls = append(ls, f.Letter)
		}
		errs = append(errs, fmt.Errorf("could not %s %d of %s: %s", verb, len(r.Failed), count(len(r.Matched)), seqs(ls)))
	}
	if len(r.NotTried) > 0 {
		errs = append(errs, fmt.Errorf("stopped (%v) before dead letters %s", ctx.Err(), seqs(r.NotTried)))
	}
	return errors.Join(errs...)
}

// writePlan is a dry run's table: what each replay would republish where.
func writePlan(w io.Writer, ls []Letter) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tSTEP\tREASON\tONBOARDING\tWOULD REPUBLISH TO")
	for _, l := range ls {
		to := l.OriginalSubject
		if _, err := Republished(l.raw()); err != nil {
			to = "(cannot: " + err.Error() + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", l.Seq, textsafe.Escape(l.Step), dash(l.Reason), dash(l.OnboardingID), textsafe.Escape(to))
	}
	return tw.Flush()
}

func count(n int) string {
	if n == 1 {
		return "1 dead letter"
	}
	return strconv.Itoa(n) + " dead letters"
}

func seqs(ls []Letter) string {
	s := make([]string, len(ls))
	for i, l := range ls {
		s[i] = strconv.FormatUint(l.Seq, 10)
	}
	return strings.Join(s, ", ")
}
