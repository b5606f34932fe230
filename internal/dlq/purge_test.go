package dlq_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/guestflow/guestflow/internal/dlq"
)

func TestDLQPurge(t *testing.T) {
	for _, tc := range []struct {
		name     string
		f        dlq.Filter
		answer   bool
		asked    int
		wantErr  error
		wantLeft []uint64
		wantOut  string
	}{
		{"declined", dlq.Filter{}, false, 4, dlq.ErrCancelled, []uint64{1, 3, 4, 5}, ""},
		{"a filter", dlq.Filter{OnboardingIDs: []string{"ob-3"}}, true, 2, nil, []uint64{1, 5}, "deleted 2 of 2 dead letters"},
		{"no filter means all", dlq.Filter{}, true, 4, nil, nil, "deleted 4 of 4 dead letters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js := newJS(t, true)
			fixture(t, js)
			var asked int
			var out bytes.Buffer
			_, err := dlq.Purge(t.Context(), js, dlq.PurgeOptions{Filter: tc.f, Confirm: func(n int) (bool, error) {
				asked = n
				return tc.answer, nil
			}}, &out)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
			if asked != tc.asked {
				t.Errorf("confirmation asked for %d, want %d", asked, tc.asked)
			}
			if got := remaining(t, js); !slices.Equal(got, tc.wantLeft) {
				t.Errorf("left %v, want %v", got, tc.wantLeft)
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("output %q lacks %q", out.String(), tc.wantOut)
			}
		})
	}
}

func TestDLQPurgeCountsWhatSomeoneElseRemoved(t *testing.T) {
	js := newJS(t, true)
	fixture(t, js)
	var out bytes.Buffer
	r, err := dlq.Purge(t.Context(), js, dlq.PurgeOptions{Confirm: func(int) (bool, error) {
		deleteSeq(t, js, 4) // another operator, between listing and deleting
		return true, nil
	}}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Done) != 3 || len(r.Gone) != 1 || !strings.Contains(out.String(), "deleted 3 of 4 dead letters; 1 already gone (4)") {
		t.Errorf("report %+v\n%s", r, out.String())
	}
}

func TestDLQPurgeOfMoreLettersThanItDeletesAtOnce(t *testing.T) {
	js := newJS(t, true)
	var want, gone []uint64
	for i := range 100 {
		seq := put(t, js, letter{step: dlq.Steps[i%4], reason: "graph_error", onboarding: "ob", failedAt: base})
		if i%9 == 4 {
			gone = append(gone, seq)
		} else {
			want = append(want, seq)
		}
	}
	var out bytes.Buffer
	r, err := dlq.Purge(t.Context(), js, dlq.PurgeOptions{Confirm: func(int) (bool, error) {
		for _, seq := range gone {
			deleteSeq(t, js, seq)
		}
		return true, nil
	}}, &out)
	if err != nil {
		t.Fatal(err, out.String())
	}
	if got := seqsOf(r.Done); !slices.Equal(got, want) {
		t.Errorf("deleted %v, want %v, in stream order", got, want)
	}
	if got := seqsOf(r.Gone); !slices.Equal(got, gone) {
		t.Errorf("gone %v, want %v", got, gone)
	}
	if left := remaining(t, js); len(left) != 0 {
		t.Errorf("left %v", left)
	}
}

func TestDLQPurgeStopsWhenTheContextEnds(t *testing.T) {
	js := newJS(t, true)
	fixture(t, js)
	ctx, cancel := context.WithCancel(t.Context())
	var out bytes.Buffer
	r, err := dlq.Purge(ctx, js, dlq.PurgeOptions{Confirm: func(int) (bool, error) {
		cancel()
		return true, nil
	}}, &out)
	if err == nil || !strings.Contains(err.Error(), "stopped (context canceled) before dead letters 1, 3, 4, 5") {
		t.Errorf("error %v", err)
	}
	if len(r.Done) != 0 || len(r.NotTried) != 4 {
		t.Errorf("deleted %d, not tried %d", len(r.Done), len(r.NotTried))
	}
	if got := remaining(t, js); !slices.Equal(got, []uint64{1, 3, 4, 5}) {
		t.Errorf("left %v", got)
	}
}

func TestDLQPurgeCountsWhatSomeoneElseRemovedBehindALetterItKeeps(t *testing.T) {
	js := newJS(t, true)
	// 2 stays (another reason): the server reports the 3 someone else
	// removed as "sequence 3 not found", not as "no message found".
	put(t, js, letter{step: "invite", reason: "invalid_event", onboarding: "ob-1", failedAt: base})
	put(t, js, letter{step: "license", reason: "no_license_seats", onboarding: "ob-2", failedAt: base})
	put(t, js, letter{step: "invite", reason: "invalid_event", onboarding: "ob-3", failedAt: base})
	var out bytes.Buffer
	r, err := dlq.Purge(t.Context(), js, dlq.PurgeOptions{Filter: dlq.Filter{Reasons: []string{"invalid_event"}}, Confirm: func(int) (bool, error) {
		deleteSeq(t, js, 3)
		return true, nil
	}}, &out)
	if err != nil {
		t.Fatal(err, out.String())
	}
	if !slices.Equal(seqsOf(r.Done), []uint64{1}) || !slices.Equal(seqsOf(r.Gone), []uint64{3}) {
		t.Errorf("report %+v\n%s", r, out.String())
	}
}
