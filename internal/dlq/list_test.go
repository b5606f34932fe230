package dlq_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/guestflow/guestflow/internal/dlq"
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
