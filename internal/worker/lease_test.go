package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/broker/brokertest"
)

func TestLeaseKeepsASecondDeliveryOut(t *testing.T) {
	ctx := context.Background()
	js := brokertest.JetStream(t, brokertest.URL(t))
	now := time.Now()
	clock := func() time.Time { return now }
	a, err := openLeases(ctx, js, 1, 3*time.Second, clock)
	if err != nil {
		t.Fatal(err)
	}
	b, err := openLeases(ctx, js, 1, 3*time.Second, clock)
	if err != nil {
		t.Fatal(err)
	}
	held, ok, err := a.acquire(ctx, "license.7")
	if err != nil || !ok {
		t.Fatalf("first acquire: %v %v", ok, err)
	}
	if _, ok, err := b.acquire(ctx, "license.7"); err != nil || ok {
		t.Fatalf("a second delivery got a live lease: %v %v", ok, err)
	}
	if _, ok, _ := b.acquire(ctx, "license.8"); !ok {
		t.Fatal("another input's lease was refused")
	}
	now = now.Add(2 * time.Second)
	a.renew(ctx, held)
	now = now.Add(2 * time.Second) // past the first expiry, within the renewed one
	if _, ok, _ := b.acquire(ctx, "license.7"); ok {
		t.Fatal("a renewed lease was taken over")
	}
	now = now.Add(5 * time.Second) // its worker died: no renewals
	if _, ok, err := b.acquire(ctx, "license.7"); err != nil || !ok {
		t.Fatalf("an expired lease was not taken over: %v %v", ok, err)
	}
	a.release(ctx, held) // the old holder's release must not free the new holder's lease
	if _, ok, _ := a.acquire(ctx, "license.7"); ok {
		t.Fatal("a stale release freed another worker's lease")
	}
}

func TestLeaseCountsFailedAttempts(t *testing.T) {
	ctx := context.Background()
	js := brokertest.JetStream(t, brokertest.URL(t))
	now := time.Now()
	l, err := openLeases(ctx, js, 1, 3*time.Second, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	get := func(want int) *lease {
		t.Helper()
		ls, ok, err := l.acquire(ctx, "role.3")
		if err != nil || !ok {
			t.Fatalf("acquire: %v %v", ok, err)
		}
		if ls.failures != want {
			t.Fatalf("failures %d, want %d", ls.failures, want)
		}
		return ls
	}
	ls := get(0)
	l.failed(ctx, ls, 1)
	ls = get(1) // a failed attempt is remembered, and its lease is free at once
	l.free(ctx, ls)
	ls = get(1) // a wait for budget keeps the count as it was
	now = now.Add(5 * time.Second)
	ls = get(2) // its worker died: that attempt failed too
	if ls.deaths != 1 {
		t.Fatalf("deaths %d, want 1", ls.deaths)
	}
	l.failed(ctx, ls, 3)
	if ls = get(3); ls.deaths != 1 {
		t.Fatalf("deaths %d after an ordinary failure, want still 1", ls.deaths)
	}
	l.release(ctx, ls)
	get(0) // a finished input starts over
}

func TestALeaseKeyOlderThanItsTTLIsGone(t *testing.T) {
	ctx := context.Background()
	js := brokertest.JetStream(t, brokertest.URL(t))
	const keyTTL = 2 * time.Second
	cfg := leaseConfig
	cfg.TTL = keyTTL
	l, err := openLeasesWith(ctx, js, cfg, time.Minute, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	old, ok, err := l.acquire(ctx, "license.1")
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	l.failed(ctx, old, 1) // left behind with its count, as after a failed attempt
	time.Sleep(keyTTL / 2)
	if _, ok, err := l.acquire(ctx, "license.2"); err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	deadline := time.Now().Add(keyTTL + 3*time.Second)
	for {
		_, err := l.bucket().Get(ctx, "license.1")
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the key license.1 is still there %v after it was written; the bucket's TTL is %v", keyTTL+3*time.Second, keyTTL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := l.bucket().Get(ctx, "license.2"); err != nil {
		t.Errorf("a lease younger than the TTL is gone too: %v", err)
	}
}

// TestALeaseBucketWithoutTTLGetsIt opens a bucket created without a TTL,
// as an operator's script or an older release might have left it.
func TestALeaseBucketWithoutTTLGetsIt(t *testing.T) {
	ctx := context.Background()
	js := brokertest.JetStream(t, brokertest.URL(t))
	cfg := leaseConfig
	cfg.TTL = 0
	kv, err := js.CreateKeyValue(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openLeases(ctx, js, 1, time.Minute, time.Now); err != nil {
		t.Fatal(err)
	}
	if st, err := kv.Status(ctx); err != nil || st.TTL() != LeaseKeyTTL {
		t.Errorf("the bucket's TTL is %v (%v), want %v", st.TTL(), err, LeaseKeyTTL)
	}
}
