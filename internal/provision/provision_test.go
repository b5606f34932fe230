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
