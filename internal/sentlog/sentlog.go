// Package sentlog records, in a NATS key-value bucket, which onboardings
// have been mailed. The notify step checks it before sending, so that a
// redelivered input — after a lost ack, a crash or a replay — does not mail
// the guest again. It needs no server beyond the broker the workers use.
package sentlog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the key-value bucket's name.
const Bucket = "GUESTFLOW_NOTIFY_SENT"

// Log is a sent log backed by a JetStream key-value bucket.
type Log struct{ kv jetstream.KeyValue }

// Open creates or opens the bucket. History 1 and file storage: only the
// latest record matters, and it must survive a broker restart.
func Open(ctx context.Context, js jetstream.JetStream) (*Log, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "guestflow: onboardings whose notification mail was sent",
		History:     1,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("sent log: %w", err)
	}
	return &Log{kv: kv}, nil
}

// Sent returns when onboardingID was mailed.
func (l *Log) Sent(ctx context.Context, onboardingID string) (time.Time, bool, error) {
	e, err := l.kv.Get(ctx, key(onboardingID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("sent log: %w", err)
	}
	at, err := time.Parse(time.RFC3339Nano, string(e.Value()))
	if err != nil {
		return time.Time{}, false, fmt.Errorf("sent log: entry %s: %w", e.Key(), err)
	}
	return at, true, nil
}

// Record stores that onboardingID was mailed at at.
func (l *Log) Record(ctx context.Context, onboardingID string, at time.Time) error {
	if _, err := l.kv.Put(ctx, key(onboardingID), []byte(at.UTC().Format(time.RFC3339Nano))); err != nil {
		return fmt.Errorf("sent log: %w", err)
	}
	return nil
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_=-]{1,128}$`)

// key keeps ids readable where the key alphabet allows (UUIDs do) and
// hashes the rest, since event ids are any non-empty string.
func key(id string) string {
	if plainKey.MatchString(id) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "h_" + hex.EncodeToString(sum[:16])
}
