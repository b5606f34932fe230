package index

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/provision"
)

// Writer adds messages to the index. Several workers add to the same
// onboardings and addresses (each step adds the event it publishes and
// the input it receives), but a message's keys say that message only, so
// writers never conflict and no write reads first.
type Writer struct {
	js        jetstream.JetStream
	pub       jetstream.JetStream
	cfg       jetstream.KeyValueConfig
	recreated func()
}

// Options say how to keep the index.
type Options struct {
	// TTL is how long a key is kept after its last write: the event
	// stream's MaxAge, when every message a key names has left the stream
	// too (they were all stored before the write). Required.
	TTL time.Duration
	// Replicas is how many servers of a JetStream cluster keep the
	// bucket (0 means 1); see provision.KeyValue.
	Replicas int
	// Recreated, when set, is told that the bucket was found deleted
	// under the running writer and created again.
	Recreated func()
}

// putSubject is where a key is put: a key-value put is a publish to the
// bucket's subject for the key, which is what the writer sends itself so
// as to send a message's keys at once.
const putSubject = "$KV." + Bucket + "."

// ackTimeout bounds how long the writer's publisher remembers a put whose
// acknowledgement has not come (a broker gone without the connection
// noticing yet). Add gives up on it at its context's end, sooner.
const ackTimeout = 30 * time.Second

// BucketConfig is the bucket's configuration with keys kept for ttl.
func BucketConfig(ttl time.Duration) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "guestflow: the GUESTFLOW sequences of each onboarding id and address, for guestflow status",
		History:     1,
		Storage:     jetstream.FileStorage,
		TTL:         ttl,
	}
}

// Open opens the bucket, creating it when it is absent and putting its
// settings back to these (file storage, history 1, the TTL) when they
// differ (provision.KeyValue): a bucket left with other settings, or
// created before it had a TTL, gets them.
func Open(ctx context.Context, js jetstream.JetStream, o Options) (*Writer, error) {
	if o.TTL <= 0 {
		return nil, errors.New("index: a TTL is required")
	}
	cfg := BucketConfig(o.TTL)
	cfg.Replicas = o.Replicas
	if _, _, err := provision.KeyValue(ctx, js, cfg); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	// A publisher of its own on the same connection, for the bound on
	// unanswered puts, which is a setting of the whole JetStream context.
	pub, err := jetstream.New(js.Conn(), jetstream.WithPublishAsyncTimeout(ackTimeout))
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	return &Writer{js: js, pub: pub, cfg: cfg, recreated: o.Recreated}, nil
}

// Add files the message stored at seq under its onboarding id and its
// address, as Identify reads them. Adding a message twice changes nothing
// a reader sees, so every step may add what it receives without knowing
// whether the step before added it when publishing it. A message with
// neither an onboarding id nor an address is not filed: no query finds it
// but a scan.
func (w *Writer) Add(ctx context.Context, seq uint64, subject string, header map[string][]string, body []byte) error {
	return w.file(ctx, seq, Identify(subject, header, body))
}

// AddEvent files the message stored at seq that decoded as ev: Add,
// without decoding it again.
func (w *Writer) AddEvent(ctx context.Context, seq uint64, ev event.Event) error {
	return w.file(ctx, seq, IdentityOf(ev))
}

// file puts the keys of the message at seq whose it is as id says.
func (w *Writer) file(ctx context.Context, seq uint64, id Identity) error {
	if id.OnboardingID == "" && id.Email == "" {
		return nil
	}
	o := hash(id.OnboardingID)
	s := strconv.FormatUint(seq, 10)
	keys := [2]keyValue{{key: onboardingPrefix + o + "." + s}}
	n := 1
	if id.Email != "" {
		keys[1] = keyValue{key: addressPrefix + hash(id.Email) + "." + o, value: []byte(s)}
		n++
	}
	return w.bucket(ctx, func() error { return w.put(ctx, keys[:n]) })
}

// keyValue is one key to put, and its value.
type keyValue struct {
	key   string
	value []byte
}

// put puts keys, a message's one or two, at once and then waits for
// their acknowledgements together: one round trip. It reports the first
// failure.
func (w *Writer) put(ctx context.Context, keys []keyValue) error {
	var futures [2]jetstream.PubAckFuture
	for i, k := range keys {
		// With the publisher's retries on "no responders" (two, ¼ s
		// apart), which ride out a leader election; after them bucket
		// looks whether the bucket is gone.
		f, err := w.pub.PublishMsgAsync(&nats.Msg{Subject: putSubject + k.key, Data: k.value})
		if err != nil {
			return fmt.Errorf("index %s: %w", k.key, err)
		}
		futures[i] = f
	}
	var first error
	for i, f := range futures[:len(keys)] {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if first == nil {
				first = fmt.Errorf("index %s: %w", keys[i].key, err)
			}
		case <-ctx.Done():
			return fmt.Errorf("index %s: %w", keys[i].key, ctx.Err())
		}
	}
	return first
}

// bucket runs op, creating the bucket again once when op failed because
// it was deleted under the running writer. Only a lookup that finds it
// absent creates it, as for the lease bucket: a restarting broker says "no
// responders" for a moment too.
func (w *Writer) bucket(ctx context.Context, op func() error) error {
	err := op()
	if !gone(err) {
		return err
	}
	_, err = w.js.KeyValue(ctx, Bucket)
	created := false
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		_, err = w.js.CreateKeyValue(ctx, w.cfg)
		created = err == nil
		if errors.Is(err, jetstream.ErrBucketExists) {
			err = nil // another writer was first
		}
	}
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	if created && w.recreated != nil {
		w.recreated()
	}
	return op()
}

// gone reports whether err says the bucket's stream is not there.
func gone(err error) bool {
	return errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}
