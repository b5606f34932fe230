package worker_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// logged is one log record with its attributes (the logger's too) as text.
type logged struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// logs records what a worker logs.
type logs struct {
	mu   sync.Mutex
	list []logged
}

func (l *logs) logger() *slog.Logger { return slog.New(recorder{logs: l}) }

// all returns the records at level or above.
func (l *logs) all(level slog.Level) []logged {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []logged
	for _, r := range l.list {
		if r.level >= level {
			out = append(out, r)
		}
	}
	return out
}

// wait waits until a record whose message starts with msg is logged.
func (l *logs) wait(t *testing.T, msg string) {
	t.Helper()
	for i := 0; ; i++ {
		for _, r := range l.all(slog.LevelDebug) {
			if strings.HasPrefix(r.msg, msg) {
				return
			}
		}
		if i == 1000 {
			t.Fatalf("no %q logged", msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type recorder struct {
	logs  *logs
	attrs []slog.Attr
}

func (recorder) Enabled(context.Context, slog.Level) bool { return true }

func (h recorder) Handle(_ context.Context, r slog.Record) error {
	e := logged{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		e.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		e.attrs[a.Key] = a.Value.String()
		return true
	})
	h.logs.mu.Lock()
	h.logs.list = append(h.logs.list, e)
	h.logs.mu.Unlock()
	return nil
}

func (h recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return recorder{logs: h.logs, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h recorder) WithGroup(string) slog.Handler { return h }

// find waits for a message on subject whose onboarding id (read as the
// dead-letter header or from the event) is id.
func (h *harness) find(stream, subject, id string) jetstream.Msg {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		c, err := h.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		for {
			m, err := c.Next(jetstream.FetchMaxWait(time.Second))
			if err != nil {
				break
			}
			got := m.Headers().Get(worker.HeaderOnboardingID)
			if ev, err := events.Decode(m.Subject(), m.Headers(), m.Data()); err == nil && got == "" {
				got = events.OnboardingID(ev)
			}
			if got == id {
				return m
			}
		}
	}
	h.t.Fatalf("no message for %s on %s", id, subject)
	return nil
}
