package index_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/broker/brokertest"
	"github.com/guestflow/guestflow/internal/index"
	"github.com/guestflow/guestflow/pkg/events"
)

// message is a joined event of onboarding id for email, as stored.
type message struct {
	subject string
	header  map[string][]string
	body    []byte
}

func joined(t testing.TB, id, email string) message {
	t.Helper()
	ev, err := events.NewJoined(id, "hr/test", events.Joined{Email: email, GivenName: "Ana", Surname: "Silva",
		UsageLocation: "PT", Instance: "sales"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	h, body, err := events.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	return message{subject: events.SubjectJoined, header: h, body: body}
}

func open(t *testing.T, o index.Options) (jetstream.JetStream, *index.Writer) {
	t.Helper()
	js := brokertest.JetStream(t, brokertest.URL(t))
	if o.TTL == 0 {
		o.TTL = time.Hour
	}
	w, err := index.Open(t.Context(), js, o)
	if err != nil {
		t.Fatal(err)
	}
	return js, w
}

func add(t *testing.T, w *index.Writer, seq uint64, m message) {
	t.Helper()
	if err := w.Add(t.Context(), seq, m.subject, m.header, m.body); err != nil {
		t.Fatal(err)
	}
}

func lookup(t *testing.T, js jetstream.JetStream, query string) ([]uint64, bool) {
	t.Helper()
	r, err := index.OpenReader(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	seqs, found, err := r.Lookup(t.Context(), query)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(seqs)
	return seqs, found
}

func TestAMessageIsFoundByItsOnboardingIDAndAddress(t *testing.T) {
	js, w := open(t, index.Options{})
	add(t, w, 1, joined(t, "ob-1", "Ana@Fabrikam.com"))
	add(t, w, 2, joined(t, "ob-2", "liam@contoso.example"))
	add(t, w, 3, joined(t, "urn:hr:42/ana again", "ana@fabrikam.com")) // an id outside the key alphabet
	add(t, w, 5, joined(t, "ob-1", "ana@fabrikam.com"))
	add(t, w, 5, joined(t, "ob-1", "ana@fabrikam.com")) // a redelivery
	for _, tc := range []struct {
		query string
		want  []uint64
	}{
		{"ob-1", []uint64{1, 5}},
		{" ANA@fabrikam.COM ", []uint64{1, 3, 5}},
		{"urn:hr:42/ana again", []uint64{3}},
		{"liam@contoso.example", []uint64{2}},
	} {
		if got, found := lookup(t, js, tc.query); !found || !slices.Equal(got, tc.want) {
			t.Errorf("%q: %v %v, want %v", tc.query, got, found, tc.want)
		}
	}
	if got, found := lookup(t, js, "nobody@fabrikam.com"); found || len(got) > 0 {
		t.Errorf("nobody: %v %v", got, found)
	}
}

func TestAMessageWithNeitherIDNorAddressIsNotFiled(t *testing.T) {
	js, w := open(t, index.Options{})
	if err := w.Add(t.Context(), 1, events.SubjectJoined, nil, []byte("not an event")); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), index.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := kv.ListKeys(t.Context()); err != nil {
		t.Fatal(err)
	} else {
		var got []string
		for k := range keys.Keys() {
			got = append(got, k)
		}
		if len(got) > 0 {
			t.Errorf("keys %v, want none", got)
		}
	}
}

func TestTheListsKeepTheNewest(t *testing.T) {
	js, w := open(t, index.Options{})
	seq := uint64(0)
	for i := range index.MaxOnboardings + 3 {
		seq++
		add(t, w, seq, joined(t, fmt.Sprintf("ob-%d", i), "ana@fabrikam.com"))
	}
	got, _ := lookup(t, js, "ana@fabrikam.com")
	if len(got) != index.MaxOnboardings || got[0] != 4 || got[len(got)-1] != seq {
		t.Errorf("address: %d sequences from %v, want the newest %d", len(got), got[:3], index.MaxOnboardings)
	}
	m := joined(t, "ob-reused", "liam@contoso.example")
	for range index.MaxEvents + 3 {
		seq++
		add(t, w, seq, m)
	}
	got, _ = lookup(t, js, "ob-reused")
	if len(got) != index.MaxEvents || got[0] != seq-uint64(index.MaxEvents)+1 {
		t.Errorf("onboarding: %d sequences from %v, want the newest %d", len(got), got[:3], index.MaxEvents)
	}
}

// TestConcurrentWritersLoseNothing has several workers file messages of
// one onboarding and one address at once: every update is against the
// revision read, so none overwrites another's.
func TestConcurrentWritersLoseNothing(t *testing.T) {
	js, w := open(t, index.Options{})
	const writers, each = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for i := range writers {
		wg.Go(func() {
			for j := range each {
				// Every writer files events of ob-1 and onboardings of its own.
				seq := uint64(i*each + j + 1)
				id := "ob-1"
				if j%2 == 1 {
					id = fmt.Sprintf("ob-%d-%d", i, j)
				}
				m := joined(t, id, "ana@fabrikam.com")
				errs <- w.Add(context.Background(), seq, m.subject, m.header, m.body)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, _ := lookup(t, js, "ana@fabrikam.com")
	if len(got) != writers*each {
		t.Errorf("%d of %d sequences filed: %v", len(got), writers*each, got)
	}
}

func TestAKeyOlderThanTheTTLIsGone(t *testing.T) {
	const ttl = 2 * time.Second
	js, w := open(t, index.Options{TTL: ttl})
	add(t, w, 1, joined(t, "ob-old", "old@fabrikam.com"))
	time.Sleep(ttl / 2)
	add(t, w, 2, joined(t, "ob-live", "live@fabrikam.com"))
	deadline := time.Now().Add(ttl + 3*time.Second)
	for {
		if _, found := lookup(t, js, "old@fabrikam.com"); !found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the keys of ob-old are still there %v after they were written; the TTL is %v", ttl+3*time.Second, ttl)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got, found := lookup(t, js, "live@fabrikam.com"); !found || !slices.Equal(got, []uint64{2}) {
		t.Errorf("a key younger than the TTL: %v %v", got, found)
	}
}

func TestABucketWithoutTTLGetsIt(t *testing.T) {
	js := brokertest.JetStream(t, brokertest.URL(t))
	kv, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: index.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := index.Open(t.Context(), js, index.Options{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if st, err := kv.Status(t.Context()); err != nil || st.TTL() != time.Hour {
		t.Errorf("TTL %v (%v), want 1h", st.TTL(), err)
	}
}

func TestTheBucketComesBackWhenDeletedUnderTheWriter(t *testing.T) {
	var recreated atomic.Int32
	js, w := open(t, index.Options{Recreated: func() { recreated.Add(1) }})
	add(t, w, 1, joined(t, "ob-1", "ana@fabrikam.com"))
	if err := js.DeleteKeyValue(t.Context(), index.Bucket); err != nil {
		t.Fatal(err)
	}
	if _, err := index.OpenReader(t.Context(), js); !errors.Is(err, index.ErrNoIndex) {
		t.Fatalf("reader of a deleted bucket: %v", err)
	}
	add(t, w, 2, joined(t, "ob-2", "ana@fabrikam.com"))
	if got, _ := lookup(t, js, "ana@fabrikam.com"); !slices.Equal(got, []uint64{2}) || recreated.Load() != 1 {
		t.Errorf("after re-creation: %v, re-created %d times", got, recreated.Load())
	}
}
