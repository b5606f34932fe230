package memo_test

import (
	"testing"

	"github.com/guestflow/guestflow/internal/broker/brokertest"
	"github.com/guestflow/guestflow/internal/memo"
)

type record struct {
	Email string `json:"email"`
}

func TestARecordIsKeptPerStepAndOnboarding(t *testing.T) {
	js := brokertest.JetStream(t, brokertest.URL(t))
	s, err := memo.Open(t.Context(), js)
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
	s, err := memo.Open(t.Context(), js)
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
