package throttle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// store is where the shared state lives: the NATS bucket, or memory in
// tests of the pacer on a fake clock.
type store interface {
	// get returns key's value and revision; nil and 0 when it is absent.
	get(ctx context.Context, key string) ([]byte, uint64, error)
	// put sets key to v if it is still at revision rev (0: absent) and
	// returns its new revision, or returns errConflict.
	put(ctx context.Context, key string, v []byte, rev uint64) (uint64, error)
}

// errConflict means another worker changed the key first.
var errConflict = errors.New("throttle: concurrent update")

type kvStore struct{ kv jetstream.KeyValue }

// opTimeout bounds one read or write of the bucket, whatever the caller's
// deadline: a reply lost with a server (the bucket's leader killed while
// its replicas elect another) is never sent again, and the call would
// otherwise hold the step until its own deadline, minutes away. It is
// nats.go's timeout for a call without a deadline.
const opTimeout = 5 * time.Second

func (s kvStore) get(ctx context.Context, key string) ([]byte, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("throttle: %w", err)
	}
	return e.Value(), e.Revision(), nil
}

func (s kvStore) put(ctx context.Context, key string, v []byte, rev uint64) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	var err error
	if rev == 0 {
		rev, err = s.kv.Create(ctx, key, v)
	} else {
		rev, err = s.kv.Update(ctx, key, v, rev)
	}
	return rev, kvErr(err)
}

func kvErr(err error) error {
	var apiErr *jetstream.APIError
	if errors.Is(err, jetstream.ErrKeyExists) || errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return errConflict
	}
	if err != nil {
		return fmt.Errorf("throttle: %w", err)
	}
	return nil
}

// memStore is a store in memory.
type memStore struct {
	mu   sync.Mutex
	rev  uint64
	vals map[string]memEntry
}

type memEntry struct {
	v   []byte
	rev uint64
}

func newMemStore() *memStore { return &memStore{vals: map[string]memEntry{}} }

func (m *memStore) get(_ context.Context, key string) ([]byte, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.vals[key]
	if !ok {
		return nil, 0, nil
	}
	return e.v, e.rev, nil
}

func (m *memStore) put(_ context.Context, key string, v []byte, rev uint64) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.vals[key].rev != rev {
		return 0, errConflict
	}
	m.rev++
	m.vals[key] = memEntry{v: append([]byte(nil), v...), rev: m.rev}
	return m.rev, nil
}

// paceCache holds the pacing keys as the watch last delivered them, or as
// this worker last wrote them: a booking reads its scopes from it rather
// than from the bucket, which saves a round trip per scope per booking
// (most of the pacer's messages when every booking read first). The
// compare-and-set that follows still decides: a value another worker has
// changed meanwhile fails it. The newer value is then on its way on the
// watch, which brings every write to every worker: the next read waits
// for it, up to staleWait, before it reads the key from the bucket (a
// third of the pacer's requests when every conflict read the key).
type paceCache struct {
	mu   sync.Mutex
	on   bool // the watch is open; without it nothing is kept
	keys map[string]cached
	// stale holds the revisions a compare-and-set found overtaken, by
	// key; changed is closed when a value is kept.
	stale   map[string]uint64
	changed chan struct{}
}

// staleWait bounds how long a read waits for the watch to bring a value
// newer than one a compare-and-set found overtaken: the broker sends the
// watchers the write that overtook it when it stores it, before it
// answers the compare-and-set that lost, so the wait is normally a
// fraction of a millisecond; a watch that lags costs a read after this.
const staleWait = 5 * time.Millisecond

type cached struct {
	b   []byte
	rev uint64
}

// remember keeps key's value at rev, unless a later one is kept already.
func (c *paceCache) remember(key string, b []byte, rev uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.on {
		return
	}
	if old, ok := c.keys[key]; ok && old.rev >= rev {
		return
	}
	c.keys[key] = cached{b, rev}
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

// lookup returns key's kept value; ok is false when there is none, or
// when the kept one is overtaken and no newer one came within staleWait.
func (c *paceCache) lookup(key string) (cached, bool) {
	var timeout <-chan time.Time
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		v, ok := c.keys[key]
		if stale, overtaken := c.stale[key]; !ok || !overtaken || v.rev > stale {
			return v, ok
		}
		if timeout == nil {
			t := time.NewTimer(staleWait)
			defer t.Stop()
			timeout = t.C
		}
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
			c.mu.Lock()
		case <-timeout:
			c.mu.Lock()
			delete(c.keys, key) // read from the bucket, and kept again
			return cached{}, false
		}
	}
}

// outdated says that key's value at rev proved stale: a compare-and-set
// against it failed.
func (c *paceCache) outdated(key string, rev uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stale == nil {
		c.stale = map[string]uint64{}
	}
	c.stale[key] = max(c.stale[key], rev)
}

// start keeps values from now on; stop empties the cache and keeps
// nothing until the next start: the watch has ended, and values kept
// without it could stay older than the bucket's for long.
func (c *paceCache) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = true
	if c.keys == nil {
		c.keys = map[string]cached{}
	}
}

func (c *paceCache) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = false
	clear(c.keys)
	clear(c.stale)
}

// load reads scope s's pacing state; the zero state when it has none.
func (g *Gate) load(ctx context.Context, s Scope) (paceState, uint64, error) {
	b, rev, err := g.read(ctx, scopeInfos[s].key)
	if err != nil {
		return paceState{}, rev, err
	}
	st := decodeState(b)
	g.sawState(s, b != nil, st)
	return st, rev, nil
}

// decodeState decodes a pacing key's value: the zero state when the key
// is absent (b nil) or damaged. A damaged state is started afresh rather
// than stopping every call: its revision still guards the overwrite.
func decodeState(b []byte) paceState {
	var st paceState
	if b != nil && json.Unmarshal(b, &st) != nil {
		return paceState{}
	}
	return st
}

// save stores scope s's pacing state if its key is still at rev.
func (g *Gate) save(ctx context.Context, s Scope, st paceState, rev uint64) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if _, err := g.write(ctx, scopeInfos[s].key, b, rev); err != nil {
		return err
	}
	g.sawState(s, true, st)
	return nil
}

// read returns a key of the bucket (a pacing key or a mail slot), from
// the watch's copy when it has one, else from the bucket, and keeps it.
func (g *Gate) read(ctx context.Context, key string) ([]byte, uint64, error) {
	if c, ok := g.cache.lookup(key); ok {
		return c.b, c.rev, nil
	}
	b, rev, err := g.st.get(ctx, key)
	if err != nil {
		return nil, rev, err
	}
	g.cache.remember(key, b, rev)
	return b, rev, nil
}

// write sets key to b if it is still at rev, and returns its new
// revision: the copy keeps what was written, or learns that rev is
// overtaken.
func (g *Gate) write(ctx context.Context, key string, b []byte, rev uint64) (uint64, error) {
	next, err := g.st.put(ctx, key, b, rev)
	switch {
	case err == nil:
		g.cache.remember(key, b, next)
	case errors.Is(err, errConflict):
		g.cache.outdated(key, rev)
	}
	return next, err
}
