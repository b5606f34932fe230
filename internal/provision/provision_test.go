package provision_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/broker/brokertest"
	"github.com/guestflow/guestflow/internal/provision"
)

var (
	streamCfg = jetstream.StreamConfig{
		Name: "ORDERS", Description: "orders", Subjects: []string{"orders.>", "returns.>"},
		Storage: jetstream.FileStorage, MaxAge: time.Hour, Duplicates: time.Minute,
	}
	bucketCfg = jetstream.KeyValueConfig{Bucket: "SEEN", Description: "seen", History: 1, Storage: jetstream.FileStorage, TTL: time.Hour}
)

// broker starts a server with an admin, who may do anything, and a reader,
// who may only look the stream and the bucket up.
func broker(t *testing.T) (admin, reader jetstream.JetStream) {
	t.Helper()
	ns := brokertest.Start(t, func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "admin", Password: "admin"},
			{Username: "reader", Password: "reader", Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{"$JS.API.STREAM.INFO.ORDERS", "$JS.API.STREAM.INFO.KV_SEEN"}},
				Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
			}},
		}
	})
	connect := func(user string) jetstream.JetStream {
		nc, err := nats.Connect(ns.ClientURL(), nats.UserInfo(user, user), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
	return connect("admin"), connect("reader")
}

func TestCreatesThenLeavesAlone(t *testing.T) {
	admin, _ := broker(t)
	ctx := context.Background()
	for i, want := range []provision.Action{provision.Created, provision.Unchanged} {
		if _, got, err := provision.Stream(ctx, admin, streamCfg); err != nil || got != want {
			t.Errorf("stream, call %d: %s, %v; want %s", i+1, got, err, want)
		}
		if _, got, err := provision.KeyValue(ctx, admin, bucketCfg); err != nil || got != want {
			t.Errorf("bucket, call %d: %s, %v; want %s", i+1, got, err, want)
		}
	}
	changed := streamCfg
	changed.MaxAge = 2 * time.Hour
	s, got, err := provision.Stream(ctx, admin, changed)
	if err != nil || got != provision.Updated || s.CachedInfo().Config.MaxAge != 2*time.Hour {
		t.Errorf("a stream with another MaxAge: %s, %v", got, err)
	}
	changedKV := bucketCfg
	changedKV.TTL = 2 * time.Hour
	if _, got, err := provision.KeyValue(ctx, admin, changedKV); err != nil || got != provision.Updated {
		t.Errorf("a bucket with another TTL: %s, %v", got, err)
	}
	// Neither a description nor the order of the subjects is a difference.
	same := changed
	same.Description = "edited by hand"
	same.Subjects = []string{"returns.>", "orders.>"}
	if _, got, err := provision.Stream(ctx, admin, same); err != nil || got != provision.Unchanged {
		t.Errorf("the same stream described otherwise: %s, %v", got, err)
	}
}

// A user that may only look streams up starts against streams that were
// provisioned for it: nothing is written when nothing differs.
func TestReaderNeedsOnlyToLookUp(t *testing.T) {
	admin, reader := broker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, _, err := provision.Stream(ctx, admin, streamCfg); err != nil {
		t.Fatal(err)
	}
	if _, _, err := provision.KeyValue(ctx, admin, bucketCfg); err != nil {
		t.Fatal(err)
	}
	if _, got, err := provision.Stream(ctx, reader, streamCfg); err != nil || got != provision.Unchanged {
		t.Errorf("stream: %s, %v", got, err)
	}
	kv, got, err := provision.KeyValue(ctx, reader, bucketCfg)
	if err != nil || got != provision.Unchanged || kv.Bucket() != "SEEN" {
		t.Errorf("bucket: %s, %v", got, err)
	}
}

// When the settings differ, the reader's update is refused, and the error
// says which settings and which permission.
func TestRefusedUpdateNamesSettingsAndPermission(t *testing.T) {
	admin, reader := broker(t)
	if _, _, err := provision.Stream(context.Background(), admin, streamCfg); err != nil {
		t.Fatal(err)
	}
	changed := streamCfg
	changed.MaxAge = 2 * time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _, err := provision.Stream(ctx, reader, changed)
	var denied *provision.DeniedError
	if !errors.As(err, &denied) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want a DeniedError wrapping the time-out, got %v", err)
	}
	for _, want := range []string{"its MaxAge differ", `Permissions Violation for Publish to "$JS.API.STREAM.UPDATE.ORDERS"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q: %v", want, err)
		}
	}
}

func TestDeniedLeavesOtherErrorsAlone(t *testing.T) {
	_, reader := broker(t)
	other := errors.New("boom")
	if got := provision.Denied(reader.Conn(), other); got != other {
		t.Errorf("an error that is no time-out became %v", got)
	}
	// A time-out without a refusal stays a time-out.
	if got := provision.Denied(reader.Conn(), context.DeadlineExceeded); got != context.DeadlineExceeded {
		t.Errorf("a time-out without a violation became %v", got)
	}
	if got := provision.Denied(nil, other); got != other {
		t.Errorf("no connection: %v", got)
	}
}

// A stream or bucket on fewer servers than asked is raised in place, its
// messages kept; one on more is never lowered, not even when it is updated
// for another difference.
func TestReplicasAreRaisedInPlaceNeverLowered(t *testing.T) {
	servers := brokertest.Cluster(t, 3)
	js := brokertest.JetStream(t, brokertest.ClientURLs(servers))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, a, err := provision.Stream(ctx, js, streamCfg); err != nil || a != provision.Created {
		t.Fatalf("stream: %s, %v", a, err)
	}
	kv, a, err := provision.KeyValue(ctx, js, bucketCfg)
	if err != nil || a != provision.Created {
		t.Fatalf("bucket: %s, %v", a, err)
	}
	if _, err := js.Publish(ctx, "orders.1", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}

	r3, kv3 := streamCfg, bucketCfg
	r3.Replicas, kv3.Replicas = 3, 3
	s, a, err := provision.Stream(ctx, js, r3)
	if err != nil || a != provision.Updated || s.CachedInfo().Config.Replicas != 3 {
		t.Fatalf("stream raised to 3 replicas: %s, %v", a, err)
	}
	if kv, a, err = provision.KeyValue(ctx, js, kv3); err != nil || a != provision.Updated {
		t.Fatalf("bucket raised to 3 replicas: %s, %v", a, err)
	}
	// The replicas catch up, and nothing was lost.
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := s.Info(ctx)
		if err == nil && info.Cluster != nil && len(info.Cluster.Replicas) == 2 && info.Cluster.Replicas[0].Current && info.Cluster.Replicas[1].Current {
			if info.State.Msgs != 1 {
				t.Errorf("the raised stream holds %d messages, want 1", info.State.Msgs)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stream's replicas did not catch up: %+v, %v", info, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if e, err := kv.Get(ctx, "k"); err != nil || string(e.Value()) != "v" {
		t.Errorf("the raised bucket's key: %v", err)
	}

	// Fewer asked for: left alone, and an update for another reason keeps 3.
	if _, a, err := provision.Stream(ctx, js, streamCfg); err != nil || a != provision.Unchanged {
		t.Errorf("stream asked for 1 replica: %s, %v; want unchanged", a, err)
	}
	if _, a, err := provision.KeyValue(ctx, js, bucketCfg); err != nil || a != provision.Unchanged {
		t.Errorf("bucket asked for 1 replica: %s, %v; want unchanged", a, err)
	}
	older := streamCfg
	older.MaxAge = 2 * time.Hour
	if s, a, err := provision.Stream(ctx, js, older); err != nil || a != provision.Updated || s.CachedInfo().Config.Replicas != 3 {
		t.Errorf("stream updated for its MaxAge: %s, %v, %d replicas; want 3 kept", a, err, s.CachedInfo().Config.Replicas)
	}
	olderKV := bucketCfg
	olderKV.TTL = 2 * time.Hour
	if _, a, err := provision.KeyValue(ctx, js, olderKV); err != nil || a != provision.Updated {
		t.Errorf("bucket updated for its TTL: %s, %v", a, err)
	}
	if st, err := js.Stream(ctx, "KV_SEEN"); err != nil || st.CachedInfo().Config.Replicas != 3 {
		t.Errorf("the bucket updated for its TTL lost its replicas: %v", err)
	}

	// More than the cluster has servers: the error says what to change.
	r5 := streamCfg
	r5.Name, r5.Subjects, r5.Replicas = "FIVE", []string{"five.>"}, 5
	_, _, err = provision.Stream(ctx, js, r5)
	if err == nil || !strings.Contains(err.Error(), "nats.replicas asks for 5 replicas, which needs 5 JetStream servers") {
		t.Errorf("5 replicas on 3 servers: %v", err)
	}
}

// A single server cannot keep three replicas; the error names the setting.
func TestReplicasOnASingleServer(t *testing.T) {
	admin, _ := broker(t)
	cfg := streamCfg
	cfg.Replicas = 3
	_, _, err := provision.Stream(context.Background(), admin, cfg)
	if err == nil || !strings.Contains(err.Error(), "not part of a JetStream cluster; set nats.replicas to 1") {
		t.Errorf("stream: %v", err)
	}
	kvCfg := bucketCfg
	kvCfg.Replicas = 3
	_, _, err = provision.KeyValue(context.Background(), admin, kvCfg)
	if err == nil || !strings.Contains(err.Error(), "set nats.replicas to 1") {
		t.Errorf("bucket: %v", err)
	}
}

// A byte limit and its discard policy are settings guestflow makes: a
// stream without them gets them, and keeps what it holds.
func TestByteLimitAndDiscardPolicy(t *testing.T) {
	admin, _ := broker(t)
	ctx := context.Background()
	if _, _, err := provision.Stream(ctx, admin, streamCfg); err != nil {
		t.Fatal(err)
	}
	// More than the limit it is about to get: discard new keeps it all.
	if _, err := admin.Publish(ctx, "orders.1", make([]byte, 2048)); err != nil {
		t.Fatal(err)
	}
	limited := streamCfg
	limited.MaxBytes, limited.Discard = 1024, jetstream.DiscardNew
	s, a, err := provision.Stream(ctx, admin, limited)
	if err != nil || a != provision.Updated {
		t.Fatalf("limited: %s, %v", a, err)
	}
	if c := s.CachedInfo(); c.Config.MaxBytes != 1024 || c.Config.Discard != jetstream.DiscardNew || c.State.Msgs != 1 {
		t.Errorf("after the update: MaxBytes %d, discard %v, %d messages", c.Config.MaxBytes, c.Config.Discard, c.State.Msgs)
	}
	if _, err := admin.Publish(ctx, "orders.2", []byte("two")); err == nil {
		t.Error("a full stream stored another message")
	}
	if _, a, err := provision.Stream(ctx, admin, limited); err != nil || a != provision.Unchanged {
		t.Errorf("again: %s, %v", a, err)
	}
	// Back to no limit: 0 in the config, -1 on the server.
	if _, a, err := provision.Stream(ctx, admin, streamCfg); err != nil || a != provision.Updated {
		t.Errorf("unlimited again: %s, %v", a, err)
	}
	if _, a, err := provision.Stream(ctx, admin, streamCfg); err != nil || a != provision.Unchanged {
		t.Errorf("unlimited, again: %s, %v", a, err)
	}
}
