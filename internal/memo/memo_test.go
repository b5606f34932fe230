package memo_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/broker/brokertest"
	"github.com/guestflow/guestflow/internal/memo"
	"github.com/guestflow/guestflow/internal/worker"
)

type record struct {
	Email string `json:"email"`
}

func TestARecordIsKeptPerStepAndOnboarding(t *testing.T) {
	js := brokertest.JetStream(t, brokertest.URL(t))
	s, err := memo.Open(t.Context(), js, memo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Ids outside the key alphabet are hashed, and stay apart.
	ids := []string{"onb-1", "urn:hr:42/ana", "urn:hr:42/bob", "ünïcode"}
	for _, id := range ids {
		if err := s.Put(t.Context(), "invite", id, record{Email: id + "@x.example"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		var r record
		if ok, err := s.Get(t.Context(), "invite", id, &r); err != nil || !ok || r.Email != id+"@x.example" {
			t.Errorf("%s: %v %v %+v", id, ok, err, r)
		}
		if ok, err := s.Get(t.Context(), "notify", id, &r); err != nil || ok {
			t.Errorf("%s under another step: %v %v", id, ok, err)
		}
	}
}

func TestTheBucketComesBackWhenDeletedUnderARunningWorker(t *testing.T) {
	js := brokertest.JetStream(t, brokertest.URL(t))
	s, err := memo.Open(t.Context(), js, memo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "invite", "onb-1", record{Email: "ana@x.example"}); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteKeyValue(t.Context(), memo.Bucket); err != nil {
		t.Fatal(err)
	}
	var r record
	if ok, err := s.Get(t.Context(), "invite", "onb-1", &r); err != nil || ok {
		t.Fatalf("after the bucket was deleted: found %v, %v; want no record and no error", ok, err)
	}
	if err := s.Put(t.Context(), "invite", "onb-2", record{Email: "bob@x.example"}); err != nil {
		t.Fatalf("writing after the bucket was deleted: %v", err)
	}
	if ok, err := s.Get(t.Context(), "invite", "onb-2", &r); err != nil || !ok || r.Email != "bob@x.example" {
		t.Errorf("reading back: %v %v %+v", ok, err, r)
	}
}

// TestTheTTLOutlivesTheEventStream ties TTL to the stream's retention: a
// record must outlive every event that can still be delivered.
func TestTheTTLOutlivesTheEventStream(t *testing.T) {
	if memo.TTL <= worker.DefaultMaxAge {
		t.Errorf("TTL %v, want more than the stream's MaxAge %v", memo.TTL, worker.DefaultMaxAge)
	}
}

func TestARecordOlderThanTheTTLIsGone(t *testing.T) {
	js := brokertest.JetStream(t, brokertest.URL(t))
	const ttl = 2 * time.Second
	s, err := memo.Open(t.Context(), js, memo.Options{TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "invite", "old", record{Email: "old@x.example"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(ttl / 2)
	if err := s.Put(t.Context(), "invite", "live", record{Email: "live@x.example"}); err != nil {
		t.Fatal(err)
	}
	awaitGone(t, s, "old", ttl)
	var r record
	if ok, err := s.Get(t.Context(), "invite", "live", &r); err != nil || !ok {
		t.Errorf("a record younger than the TTL is gone too: %v %v", ok, err)
	}
}

// TestABucketWithoutTTLGetsIt opens the bucket as guestflow created it
// before it had a TTL: the next start must give it one, and the server
// must then expire the records already in it.
func TestABucketWithoutTTLGetsIt(t *testing.T) {
	js := brokertest.JetStream(t, brokertest.URL(t))
	kv, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{
		Bucket: memo.Bucket, History: 1, Storage: jetstream.FileStorage,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "invite.old", []byte(`{"email":"old@x.example"}`)); err != nil {
		t.Fatal(err)
	}

	if _, err := memo.Open(t.Context(), js, memo.Options{}); err != nil {
		t.Fatal(err)
	}
	if st, err := kv.Status(t.Context()); err != nil || st.TTL() != memo.TTL {
		t.Fatalf("after Open the bucket's TTL is %v (%v), want %v", st.TTL(), err, memo.TTL)
	}

	const ttl = time.Second
	s, err := memo.Open(t.Context(), js, memo.Options{TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	awaitGone(t, s, "old", ttl)
}

// awaitGone waits until the invite record of id has expired, allowing the
// server's expiry timer a few seconds past ttl.
func awaitGone(t *testing.T, s *memo.Store, id string, ttl time.Duration) {
	t.Helper()
	deadline := time.Now().Add(ttl + 3*time.Second)
	for {
		var r record
		ok, err := s.Get(t.Context(), "invite", id, &r)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the record %s is still there %v after it was written; the TTL is %v", id, ttl+3*time.Second, ttl)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
