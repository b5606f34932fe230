// Package provision makes the streams and key-value buckets guestflow uses
// exist with guestflow's settings, and explains why a NATS user that may
// not do so fails.
//
// Every worker makes sure at start that what it uses is there. It used to
// create-or-update each stream and bucket, which nats.go does with an
// update request every time: a worker's NATS user then needed the
// permission to update (and so to reconfigure, shrink or expire) every
// stream it touches, where reading them is all it needs once they exist.
// Stream and KeyValue look first and write only what is absent or differs,
// so that least-privilege workers start against streams and buckets that
// `guestflow provision`, run once as a more privileged user, created.
package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Action is what Stream or KeyValue did.
type Action string

// Actions.
const (
	Unchanged Action = "unchanged"
	Created   Action = "created"
	Updated   Action = "updated"
)

// Stream looks stream cfg.Name up; creates it when it is absent; and
// updates it to cfg when a setting that decides what it holds differs
// (subjects, retention, storage, MaxAge, MaxBytes, discard policy,
// duplicate window). Settings cfg leaves at their zero value are compared
// too, since zero is a choice (MaxAge 0 keeps messages for ever). The
// description is not compared: a stream created by hand without it must
// not make every worker need the permission to update it. Nor are settings
// guestflow never makes, such as placement: they are the operator's.
//
// Replicas are a floor: a stream kept on fewer servers than cfg.Replicas
// is raised to it in place (the servers copy its messages to the new
// replicas while it serves), and one kept on more is left so, also when it
// is updated for another difference. Lowering the replicas is a decision
// about how many servers may be lost, which an operator makes by hand
// (`nats stream edit --replicas`), not a worker whose configuration
// lacks nats.replicas.
func Stream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, Action, error) {
	s, err := js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, cfg)
		if err == nil {
			return s, Created, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil, "", placement(Denied(js.Conn(), err), cfg.Replicas)
		}
		// Another worker was first, with other settings.
		s, err = js.Stream(ctx, cfg.Name)
	}
	if err != nil {
		return nil, "", Denied(js.Conn(), err)
	}
	have := s.CachedInfo().Config
	diff := streamDiff(have, cfg)
	if len(diff) == 0 {
		return s, Unchanged, nil
	}
	cfg.Replicas = max(cfg.Replicas, have.Replicas)
	if s, err = js.UpdateStream(ctx, cfg); err != nil {
		return nil, "", fmt.Errorf("its %s differ from guestflow's, and updating it failed: %w", strings.Join(diff, ", "), placement(Denied(js.Conn(), err), cfg.Replicas))
	}
	return s, Updated, nil
}

func streamDiff(have, want jetstream.StreamConfig) []string {
	var d []string
	add := func(field string, differ bool) {
		if differ {
			d = append(d, field)
		}
	}
	h, w := slices.Clone(have.Subjects), slices.Clone(want.Subjects)
	slices.Sort(h)
	slices.Sort(w)
	add("subjects", !slices.Equal(h, w))
	add("retention", have.Retention != want.Retention)
	add("storage", have.Storage != want.Storage)
	add("MaxAge", have.MaxAge != want.MaxAge)
	// The server stores "no limit" as -1, which a config says with 0.
	add("MaxBytes", limit(have.MaxBytes) != limit(want.MaxBytes))
	add("discard policy", have.Discard != want.Discard)
	// The server fills in a duplicate window of two minutes (or MaxAge,
	// if shorter) when none is given.
	add("duplicate window", want.Duplicates != 0 && have.Duplicates != want.Duplicates)
	add("replicas", fewer(have.Replicas, want.Replicas))
	return d
}

// limit is a stream limit with "none" (0 or any negative) as -1.
func limit(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// fewer reports whether a stream kept on have servers is on fewer than
// want; the server reads 0 as 1.
func fewer(have, want int) bool { return max(have, 1) < max(want, 1) }

// KeyValue opens bucket cfg.Bucket; creates it when it is absent; and
// updates it to cfg when its history, TTL or storage differ, or it has
// fewer replicas (not its description; replicas are a floor: see Stream).
func KeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, Action, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, cfg)
		if err == nil {
			return kv, Created, nil
		}
		if !errors.Is(err, jetstream.ErrBucketExists) {
			return nil, "", placement(Denied(js.Conn(), err), cfg.Replicas)
		}
		kv, err = js.KeyValue(ctx, cfg.Bucket) // another worker was first
	}
	if err != nil {
		return nil, "", Denied(js.Conn(), err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, "", Denied(js.Conn(), err)
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return nil, "", fmt.Errorf("bucket %s: no stream status", cfg.Bucket)
	}
	have := bs.StreamInfo().Config
	diff := bucketDiff(have, cfg)
	if len(diff) == 0 {
		return kv, Unchanged, nil
	}
	cfg.Replicas = max(cfg.Replicas, have.Replicas)
	if kv, err = js.UpdateKeyValue(ctx, cfg); err != nil {
		return nil, "", fmt.Errorf("its %s differ from guestflow's, and updating it failed: %w", strings.Join(diff, ", "), placement(Denied(js.Conn(), err), cfg.Replicas))
	}
	return kv, Updated, nil
}

// bucketDiff compares a bucket's stream with the settings guestflow makes,
// as nats.go maps them: history is MaxMsgsPerSubject (0 meaning 1), the
// TTL MaxAge.
func bucketDiff(have jetstream.StreamConfig, want jetstream.KeyValueConfig) []string {
	var d []string
	add := func(field string, differ bool) {
		if differ {
			d = append(d, field)
		}
	}
	history := int64(max(want.History, 1))
	add("history", have.MaxMsgsPerSubject != history)
	add("TTL", have.MaxAge != want.TTL)
	add("storage", have.Storage != want.Storage)
	add("replicas", fewer(have.Replicas, want.Replicas))
	return d
}

// JetStream's error codes for a stream it cannot place on enough servers.
const (
	errCodeNoPeers               jetstream.ErrorCode = 10005 // "no suitable peers for placement"
	errCodeInsufficientResources jetstream.ErrorCode = 10023
	errCodeNotClustered          jetstream.ErrorCode = 10074 // "replicas > 1 not supported in non-clustered mode"
)

// placement adds to err, when the server could not place a stream on
// replicas servers, what to change: the server's own words name neither
// the setting nor the way out.
func placement(err error, replicas int) error {
	var api *jetstream.APIError
	if replicas <= 1 || !errors.As(err, &api) {
		return err
	}
	switch api.ErrorCode {
	case errCodeNotClustered:
		return fmt.Errorf("%w: guestflow's nats.replicas asks for %d replicas, and this NATS server is not part of a JetStream cluster; set nats.replicas to 1 or cluster the servers", err, replicas)
	case errCodeNoPeers, errCodeInsufficientResources:
		return fmt.Errorf("%w: guestflow's nats.replicas asks for %d replicas, which needs %d JetStream servers up with room for the stream; lower nats.replicas or add servers", err, replicas, replicas)
	}
	return err
}

// Denied returns err naming the permission the NATS server refused, when err
// is what such a refusal causes. A server refuses a publish or subscribe
// the user may not make by telling the client so on the side, as an
// asynchronous error, and dropping the message: the request behind it (a
// JetStream API call, a publish awaiting its PubAck) only ever times out.
// The time-out alone would send the operator looking at the network; the
// violation, which nats.go keeps as the connection's last error, names the
// subject to add to the user's permissions. Other errors are returned as
// they are.
func Denied(nc *nats.Conn, err error) error {
	if err == nil || nc == nil {
		return err
	}
	var d *DeniedError
	if errors.As(err, &d) || !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
		return err
	}
	last := nc.LastError()
	if !errors.Is(last, nats.ErrPermissionViolation) {
		return err
	}
	return &DeniedError{Err: err, Violation: last}
}

// DeniedError is a call that timed out because the server refused one of
// its messages.
type DeniedError struct {
	Err error
	// Violation is nats.go's error for the refusal: `nats: permissions
	// violation: Permissions Violation for Publish to "…"`.
	Violation error
}

func (e *DeniedError) Error() string {
	v := strings.TrimPrefix(e.Violation.Error(), nats.ErrPermissionViolation.Error()+": ")
	return fmt.Sprintf("%v: the NATS server refused it: %s (grant the NATS user that permission; the README's Security section lists what each step needs)", e.Err, v)
}

func (e *DeniedError) Unwrap() []error { return []error{e.Err, e.Violation} }
