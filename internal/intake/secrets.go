package intake

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// minSecretLen is the shortest token or HMAC secret accepted: anything
// shorter can be guessed by trying.
const minSecretLen = 16

// secret is one credential from a file. Its value never leaves this
// package's comparisons; line says which one it is in logs.
type secret struct {
	value []byte
	// digest is the SHA-256 of value: tokens are compared by digest, so
	// that the comparison takes as long whatever length was presented.
	digest [sha256.Size]byte
	line   int
}

// secretsFile is a file of secrets, one a line, "#" starting a comment line.
// It is re-read when its modification time or size changes, looked at no
// more often than every interval and only when a request needs it, so a
// secret removed from the file stops working without a restart.
//
// A file that cannot be read or holds a bad line fails closed: the
// secrets it can no longer vouch for stop working until it is fixed.
type secretsFile struct {
	path     string
	what     string // "token" or "HMAC secret", for messages
	interval time.Duration
	log      *slog.Logger
	now      func() time.Time

	current   atomic.Pointer[[]secret]
	lastCheck atomic.Int64 // UnixNano of the last stat
	reload    sync.Mutex
	stamp     fileStamp // guarded by reload
	problem   atomic.Pointer[string]
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// openSecrets reads path once; an unreadable file, a bad line or no secret
// at all is an error, so that a misconfiguration stops the start.
func openSecrets(path, what string, interval time.Duration, log *slog.Logger, now func() time.Time) (*secretsFile, error) {
	f := &secretsFile{path: path, what: what, interval: interval, log: log, now: now}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%s file: %w", what, err)
	}
	secrets, err := readSecrets(path, what)
	if err != nil {
		return nil, err
	}
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%s file %s has no %s in it (one a line; lines starting with # are comments)", what, path, what)
	}
	f.stamp = fileStamp{st.ModTime(), st.Size()}
	f.current.Store(&secrets)
	f.lastCheck.Store(now().UnixNano())
	return f, nil
}

// secrets returns the file's secrets as of at most interval ago.
func (f *secretsFile) secrets() []secret {
	now := f.now()
	if now.UnixNano()-f.lastCheck.Load() >= int64(f.interval) && f.reload.TryLock() {
		f.check(now)
		f.reload.Unlock()
	}
	return *f.current.Load()
}

// check re-reads the file if it changed. Called with f.reload held.
func (f *secretsFile) check(now time.Time) {
	f.lastCheck.Store(now.UnixNano())
	st, err := os.Stat(f.path)
	if err == nil && (fileStamp{st.ModTime(), st.Size()}) == f.stamp {
		return
	}
	var secrets []secret
	if err == nil {
		secrets, err = readSecrets(f.path, f.what)
		f.stamp = fileStamp{st.ModTime(), st.Size()}
	} else {
		f.stamp = fileStamp{}
	}
	if err != nil {
		msg := err.Error()
		if errors.Is(err, fs.ErrNotExist) {
			msg = fmt.Sprintf("%s file %s is gone", f.what, f.path)
		}
		f.problem.Store(&msg)
		f.current.Store(&[]secret{})
		f.log.Error("credentials file unusable; refusing its credentials until it is fixed", "file", f.path, "err", msg)
		return
	}
	if len(secrets) == 0 {
		msg := fmt.Sprintf("%s file %s has no %s in it", f.what, f.path, f.what)
		f.problem.Store(&msg)
	} else {
		f.problem.Store(nil)
	}
	f.current.Store(&secrets)
	f.log.Info("credentials file reloaded", "file", f.path, "count", len(secrets))
}

// err says why the file vouches for nothing, or nil.
func (f *secretsFile) err() error {
	f.secrets()
	if p := f.problem.Load(); p != nil {
		return errors.New(*p)
	}
	return nil
}

// readSecrets parses a secrets file. Its errors name the line, never the
// value on it.
func readSecrets(path, what string) ([]secret, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s file: %w", what, err)
	}
	var out []secret
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.ContainsAny(line, " \t") {
			return nil, fmt.Errorf("%s file %s, line %d: a %s cannot contain white space (one %s a line; comments are lines of their own)", what, path, n, what, what)
		}
		if len(line) < minSecretLen {
			return nil, fmt.Errorf("%s file %s, line %d: the %s is %d characters long; use at least %d, e.g. from 'openssl rand -hex 32'", what, path, n, what, len(line), minSecretLen)
		}
		out = append(out, secret{value: []byte(line), digest: sha256.Sum256([]byte(line)), line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s file %s: %w", what, path, err)
	}
	return out, nil
}
