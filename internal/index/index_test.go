package index_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
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

// keys returns the bucket's keys and their values.
func keys(t *testing.T, js jetstream.JetStream) map[string]string {
	t.Helper()
	kv, err := js.KeyValue(t.Context(), index.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	l, err := kv.ListKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for k := range l.Keys() {
		e, err := kv.Get(t.Context(), k)
		if err != nil {
			t.Fatal(err)
		}
		got[k] = string(e.Value())
	}
	return got
}

// sha is the index's hash, as documented.
func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
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
	if got := keys(t, js); len(got) > 0 {
		t.Errorf("keys %v, want none", got)
	}
}

// TestALookupKeepsTheNewest: the bounds are the reader's, every key is
// written. An address's onboardings are ordered by their latest message,
// so an old onboarding that moves again is among the newest.
func TestALookupKeepsTheNewest(t *testing.T) {
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
	if n := len(keys(t, js)); n != 2*(index.MaxOnboardings+3) {
		t.Errorf("%d keys, want all %d written", n, 2*(index.MaxOnboardings+3))
	}
	seq++
	add(t, w, seq, joined(t, "ob-0", "ana@fabrikam.com")) // the oldest, again
	got, _ = lookup(t, js, "ana@fabrikam.com")
	if len(got) != index.MaxOnboardings+1 || got[0] != 1 || got[1] != 5 || got[len(got)-1] != seq {
		t.Errorf("address after ob-0 moved: %d sequences from %v, want ob-0's two and the newest %d others", len(got), got[:3], index.MaxOnboardings-1)
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

// TestTheKeysAreAsDocumented: one key per message of an onboarding, one
// per onboarding of an address holding the sequence last filed; an
// address of an id-less message files under the empty id's hash.
func TestTheKeysAreAsDocumented(t *testing.T) {
	js, w := open(t, index.Options{})
	add(t, w, 7, joined(t, "ob-1", "Ana@Fabrikam.com"))
	add(t, w, 9, joined(t, "ob-1", "ana@fabrikam.com"))
	want := map[string]string{
		"o." + sha("ob-1") + ".7":                          "",
		"o." + sha("ob-1") + ".9":                          "",
		"e." + sha("ana@fabrikam.com") + "." + sha("ob-1"): "9",
	}
	if got := keys(t, js); !maps.Equal(got, want) {
		t.Errorf("keys\n%v\nwant\n%v", got, want)
	}
}

// TestAddingAMessageTwiceChangesNothing: the step that publishes an event
// and the one that receives it both file it.
func TestAddingAMessageTwiceChangesNothing(t *testing.T) {
	js, w := open(t, index.Options{})
	a, b := joined(t, "ob-1", "ana@fabrikam.com"), joined(t, "ob-2", "ana@fabrikam.com")
	add(t, w, 1, a)
	add(t, w, 2, a)
	add(t, w, 3, b)
	before, seqs := keys(t, js), map[string][]uint64{}
	for _, q := range []string{"ob-1", "ob-2", "ana@fabrikam.com"} {
		seqs[q], _ = lookup(t, js, q)
	}
	add(t, w, 3, b)
	add(t, w, 2, a)
	if after := keys(t, js); len(after) != len(before) {
		t.Errorf("keys %v, then %v", before, after)
	}
	for q, want := range seqs {
		if got, found := lookup(t, js, q); !found || !slices.Equal(got, want) {
			t.Errorf("%s: %v, then %v %v", q, want, got, found)
		}
	}
}

// TestTheLayoutBeforeIsStillRead: keys written by a release with one JSON
// list per onboarding and address, and then new ones by this release, for
// an onboarding that spans the upgrade.
func TestTheLayoutBeforeIsStillRead(t *testing.T) {
	js, w := open(t, index.Options{})
	kv, err := js.KeyValue(t.Context(), index.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"o." + sha("ob-1"):                 `{"seqs":[1,3]}`,
		"o." + sha("ob-old"):               `{"seqs":[2]}`,
		"o." + sha("ob-broken"):            `not json`,
		"e." + sha("ana@fabrikam.com"):     `{"onboardings":[{"key":"o.` + sha("ob-1") + `","seq":1},{"key":"o.` + sha("ob-old") + `","seq":2}]}`,
		"e." + sha("liam@contoso.example"): `{"onboardings":[{"key":"o.` + sha("ob-gone") + `","seq":4}]}`,
	} {
		if _, err := kv.Put(t.Context(), k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	add(t, w, 5, joined(t, "ob-1", "ana@fabrikam.com")) // the onboarding goes on after the upgrade
	add(t, w, 6, joined(t, "ob-new", "ana@fabrikam.com"))
	for _, tc := range []struct {
		query string
		want  []uint64
		found bool
	}{
		{"ob-1", []uint64{1, 3, 5}, true},
		{"ob-old", []uint64{2}, true},
		{"ana@fabrikam.com", []uint64{1, 2, 3, 5, 6}, true},
		{"ob-broken", nil, false},           // a value that does not decode counts as none
		{"liam@contoso.example", nil, true}, // an address key whose onboarding's key has expired
	} {
		if got, found := lookup(t, js, tc.query); found != tc.found || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v %v, want %v %v", tc.query, got, found, tc.want, tc.found)
		}
	}
}

// TestAnAddIsOnePutPerKey: no read before the write, so a user allowed
// only to publish to the bucket's subjects (and look it up) files
// messages; and each key is one message to the broker.
func TestAnAddIsOnePutPerKey(t *testing.T) {
	ns := brokertest.Start(t, func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "admin", Password: "admin"},
			{Username: "writer", Password: "writer", Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{"$JS.API.STREAM.INFO.KV_" + index.Bucket, "$KV." + index.Bucket + ".>"}},
				Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
			}},
		}
	})
	connect := func(user string) (*nats.Conn, jetstream.JetStream) {
		nc, err := nats.Connect(ns.ClientURL(), nats.UserInfo(user, user))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return nc, js
	}
	_, admin := connect("admin")
	if _, err := index.Open(t.Context(), admin, index.Options{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	nc, js := connect("writer")
	w, err := index.Open(t.Context(), js, index.Options{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		m    message
		msgs uint64
	}{
		{joined(t, "ob-1", "ana@fabrikam.com"), 2},
		{joined(t, "ob-1", "ana@fabrikam.com"), 2},
		{joined(t, "ob-2", ""), 1},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		sent := nc.Stats().OutMsgs
		err := w.Add(ctx, uint64(i+1), tc.m.subject, tc.m.header, tc.m.body)
		cancel()
		if err != nil {
			t.Fatalf("add %d: %v", i+1, err)
		}
		if n := nc.Stats().OutMsgs - sent; n != tc.msgs {
			t.Errorf("add %d: %d messages to the broker, want %d", i+1, n, tc.msgs)
		}
	}
	if got, found := lookup(t, admin, "ana@fabrikam.com"); !found || !slices.Equal(got, []uint64{1, 2}) {
		t.Errorf("ana: %v %v", got, found)
	}
}

// TestConcurrentWritersLoseNothing has several workers file messages of
// one onboarding and one address at once: each writes keys of its own
// messages, so none overwrites another's.
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
