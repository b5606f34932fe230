package dlq_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/guestflow/guestflow/internal/dlq"
	"github.com/guestflow/guestflow/internal/worker"
)

func TestDLQListFiltersAndSkipsGaps(t *testing.T) {
	js := newJS(t, true)
	fixture(t, js)
	for _, tc := range []struct {
		name string
		f    dlq.Filter
		want []uint64
	}{
		{"everything, around the deleted 2", dlq.Filter{}, []uint64{1, 3, 4, 5}},
		{"one step reads only its subject", dlq.Filter{Steps: []string{"license"}}, []uint64{3}},
		{"two steps", dlq.Filter{Steps: []string{"notify", "invite"}}, []uint64{1, 5}},
		{"reason", dlq.Filter{Reasons: []string{"no_license_seats"}}, []uint64{3}},
		{"onboarding with two dead letters", dlq.Filter{OnboardingIDs: []string{"ob-3"}}, []uint64{3, 4}},
		{"since", dlq.Filter{Since: base.Add(3 * time.Hour)}, []uint64{4, 5}},
		{"until", dlq.Filter{Until: base.Add(3 * time.Hour)}, []uint64{1, 3}},
		{"window", dlq.Filter{Since: base.Add(time.Hour), Until: base.Add(4 * time.Hour)}, []uint64{3, 4}},
		{"explicit sequences, in stream order", dlq.Filter{Seqs: []uint64{5, 3}}, []uint64{3, 5}},
		{"explicit sequence and a step it fails", dlq.Filter{Seqs: []uint64{5}, Steps: []string{"role"}}, nil},
		{"nothing matches", dlq.Filter{Reasons: []string{"unknown_sku"}}, nil},
	} {
		ls, err := dlq.List(t.Context(), js, tc.f)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var got []uint64
		for _, l := range ls {
			got = append(got, l.Seq)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: sequences %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDLQListReadsTheContractHeaders(t *testing.T) {
	js := newJS(t, true)
	fixture(t, js)
	ls, err := dlq.List(t.Context(), js, dlq.Filter{Seqs: []uint64{4}})
	if err != nil {
		t.Fatal(err)
	}
	l := ls[0]
	if l.Step != "role" || l.Reason != "unknown_role" || l.OnboardingID != "ob-3" || l.Attempts != 1 ||
		l.HTTPStatus != 404 || l.RequestID != "req-ob-3" || l.OriginalSubject != "guestflow.user.licensed" ||
		!l.FailedAt.Equal(base.Add(3*time.Hour)) || l.Subject != "guestflow.dlq.role" || !strings.Contains(l.Error, "free seat") {
		t.Errorf("letter read as %+v", l)
	}
}

func TestDLQListNamesMissingSequences(t *testing.T) {
	js := newJS(t, true)
	fixture(t, js)
	_, err := dlq.List(t.Context(), js, dlq.Filter{Seqs: []uint64{2, 3, 99}})
	if err == nil || !strings.Contains(err.Error(), "no dead letter 2, 99 in GUESTFLOW_DLQ") {
		t.Errorf("List of deleted and unknown sequences: %v", err)
	}
}

func TestDLQListWithoutTheStream(t *testing.T) {
	js := newJS(t, false)
	_, err := dlq.List(t.Context(), js, dlq.Filter{})
	if !errors.Is(err, dlq.ErrNoStream) || !strings.Contains(err.Error(), "start a worker first") {
		t.Errorf("List without GUESTFLOW_DLQ: %v", err)
	}
}

func TestDLQListOfAnEmptyStream(t *testing.T) {
	js := newJS(t, true)
	ls, err := dlq.List(t.Context(), js, dlq.Filter{Steps: []string{"role"}})
	if err != nil || len(ls) != 0 {
		t.Errorf("List of an empty DLQ = %v, %v", ls, err)
	}
}

func TestDLQListRejectsAnUnknownStep(t *testing.T) {
	js := newJS(t, true)
	if _, err := dlq.List(t.Context(), js, dlq.Filter{Steps: []string{"licence"}}); err == nil {
		t.Error("an unknown step was accepted")
	}
}

func TestDLQListReadsPastOneBatch(t *testing.T) {
	js := newJS(t, true)
	dlq.TuneScan(t, 4, 0, nil)
	var want []uint64
	for i := range 25 {
		seq := put(t, js, letter{step: dlq.Steps[i%4], reason: "graph_error", onboarding: "ob", failedAt: base})
		if i%6 == 5 {
			deleteSeq(t, js, seq)
			continue
		}
		want = append(want, seq)
	}
	ls, err := dlq.List(t.Context(), js, dlq.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(ls); !slices.Equal(got, want) {
		t.Errorf("sequences %v, want %v", got, want)
	}
}

func TestDLQListStopsAtTheLastLetterWhenItBegan(t *testing.T) {
	js := newJS(t, true)
	fixture(t, js)
	// Letters stored while List runs, as a replay that fails again stores
	// them, are not listed: with a batch of 1 the server has not sent them
	// yet when they are stored.
	var later []uint64
	dlq.TuneScan(t, 1, 0, func(uint64) {
		if later == nil {
			for range 3 {
				later = append(later, put(t, js, letter{step: "license", reason: "no_license_seats", onboarding: "ob-9", failedAt: base}))
			}
		}
	})
	for _, f := range []dlq.Filter{{}, {Steps: []string{"license"}}} {
		later = nil
		ls, err := dlq.List(t.Context(), js, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, seq := range seqsOf(ls) {
			if slices.Contains(later, seq) {
				t.Errorf("List of %s: letter %d, stored after List began, is listed: %v", f, seq, seqsOf(ls))
			}
		}
	}
}

func TestDLQListOfLettersDeletedWhileItRuns(t *testing.T) {
	js := newJS(t, true)
	fixture(t, js)
	// The letters after the first are deleted before the server sends
	// them (a concurrent replay or purge): List ends at the first instead
	// of waiting for them.
	dlq.TuneScan(t, 1, 50*time.Millisecond, func(seq uint64) {
		if seq == 1 {
			for _, s := range []uint64{3, 4, 5} {
				deleteSeq(t, js, s)
			}
		}
	})
	start := time.Now()
	ls, err := dlq.List(t.Context(), js, dlq.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(ls); !slices.Equal(got, []uint64{1}) {
		t.Errorf("sequences %v, want [1]", got)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("List took %v", d)
	}
}

func TestDLQListOfAStepWithoutLetters(t *testing.T) {
	js := newJS(t, true)
	fixture(t, js)
	deleteSeq(t, js, 3) // the only license letter left
	dlq.TuneScan(t, 0, 10*time.Second, nil)
	start := time.Now()
	ls, err := dlq.List(t.Context(), js, dlq.Filter{Steps: []string{"license"}})
	if err != nil || len(ls) != 0 {
		t.Errorf("List of a step without letters = %v, %v", seqsOf(ls), err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("List of a step without letters took %v: it waited for one", d)
	}
}

func TestDLQListLeavesNoConsumer(t *testing.T) {
	js := newJS(t, true)
	fixture(t, js)
	for _, f := range []dlq.Filter{{}, {Steps: []string{"role", "notify"}}, {Reasons: []string{"unknown_sku"}}, {Steps: []string{"license"}}} {
		if _, err := dlq.List(t.Context(), js, f); err != nil {
			t.Fatal(err)
		}
	}
	deleteSeq(t, js, 3)
	if _, err := dlq.List(t.Context(), js, dlq.Filter{Steps: []string{"license"}}); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(t.Context(), worker.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Consumers; n != 0 {
		t.Errorf("%s has %d consumers after List, want none", worker.DLQStream, n)
	}
}

func seqsOf(ls []dlq.Letter) []uint64 {
	var out []uint64
	for _, l := range ls {
		out = append(out, l.Seq)
	}
	return out
}
