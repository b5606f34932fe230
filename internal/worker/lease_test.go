package worker

import (
	"context"
	"testing"
	"time"

	"github.com/guestflow/guestflow/internal/broker/brokertest"
)

func TestLeaseKeepsASecondDeliveryOut(t *testing.T) {
	ctx := context.Background()
	js := brokertest.JetStream(t, brokertest.URL(t))
	now := time.Now()
	clock := func() time.Time { return now }
	a, err := openLeases(ctx, js, 3*time.Second, clock)
	if err != nil {
		t.Fatal(err)
	}
	b, err := openLeases(ctx, js, 3*time.Second, clock)
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
	l, err := openLeases(ctx, js, 3*time.Second, func() time.Time { return now })
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
