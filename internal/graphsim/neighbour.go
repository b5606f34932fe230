package graphsim

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Schedule is a write rate that changes over time, as the neighbour spends
// the tenant's budget: "0/s,30/s@20s,0/s@40s" is nothing for 20 seconds,
// then 30 writes a second until 40 seconds, then nothing. Offsets count
// from the emulator's start. The zero value is no neighbour. *Schedule
// implements flag.Value and pflag.Value.
type Schedule []Step

// Step is one rate of a Schedule, from At until the next step's At.
type Step struct {
	At        time.Duration
	PerSecond float64
}

// ParseSchedule reads comma-separated RATE[@OFFSET] steps: RATE is
// N/DURATION with N zero or more ("30/s", "300/10s", "0.5/s"), OFFSET a
// duration from the emulator's start. The first step starts at 0 (no
// offset, or @0); each later step needs an offset past the one before. A
// single rate ("20/s") holds for ever; the empty string is no neighbour.
func ParseSchedule(s string) (Schedule, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out Schedule
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		rate, at, hasAt := strings.Cut(part, "@")
		st := Step{}
		var err error
		if st.PerSecond, err = parseRate(rate); err != nil {
			return nil, fmt.Errorf("schedule %q, step %d (%q): %w", s, i+1, part, err)
		}
		if hasAt {
			if st.At, err = time.ParseDuration(strings.TrimSpace(at)); err != nil || st.At < 0 {
				return nil, fmt.Errorf("schedule %q, step %d (%q): %q is not an offset such as 20s or 1m30s", s, i+1, part, at)
			}
		}
		switch {
		case i == 0 && st.At != 0:
			return nil, fmt.Errorf("schedule %q: the first step starts at 0, not at %s (write %s,%s)", s, st.At, "0/s", part)
		case i > 0 && !hasAt:
			return nil, fmt.Errorf("schedule %q, step %d (%q): every step after the first needs @OFFSET, such as %s@20s", s, i+1, part, rate)
		case i > 0 && st.At <= out[i-1].At:
			return nil, fmt.Errorf("schedule %q, step %d (%q): offset %s is not after the previous step's %s", s, i+1, part, st.At, out[i-1].At)
		}
		out = append(out, st)
	}
	return out, nil
}

// parseRate reads N/DURATION as writes per second; a bare unit counts as
// one ("30/s").
func parseRate(s string) (float64, error) {
	n, per, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, errors.New("want a rate N/DURATION, such as 30/s")
	}
	count, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
	if err != nil || count < 0 || count > 1e9 {
		return 0, fmt.Errorf("%q is not a number of writes, zero or more", n)
	}
	per = strings.TrimSpace(per)
	if per != "" && (per[0] < '0' || per[0] > '9') && per[0] != '.' {
		per = "1" + per
	}
	d, err := time.ParseDuration(per)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration such as s or 10s", per)
	}
	return count / d.Seconds(), nil
}

// String formats the schedule the way ParseSchedule reads it, rates per
// second.
func (s Schedule) String() string {
	parts := make([]string, len(s))
	for i, st := range s {
		parts[i] = strconv.FormatFloat(st.PerSecond, 'f', -1, 64) + "/s"
		if i > 0 {
			parts[i] += "@" + st.At.String()
		}
	}
	return strings.Join(parts, ",")
}

// Set parses v into s, for flag packages.
func (s *Schedule) Set(v string) error {
	p, err := ParseSchedule(v)
	if err != nil {
		return err
	}
	*s = p
	return nil
}

// Type names the flag value type in pflag's help output.
func (s *Schedule) Type() string { return "SCHEDULE" }

// writes is how many writes the schedule makes between two offsets: the
// integral of its rate.
func (s Schedule) writes(from, to time.Duration) float64 {
	total := 0.0
	for i, st := range s {
		end := time.Duration(1<<63 - 1)
		if i+1 < len(s) {
			end = s[i+1].At
		}
		lo, hi := max(from, st.At), min(to, end)
		if hi > lo {
			total += st.PerSecond * (hi - lo).Seconds()
		}
	}
	return total
}

// neighbourTick is how often the neighbour catches up with its schedule.
const neighbourTick = 20 * time.Millisecond

// neighbour is a second app in the tenant spending the tenant-wide write
// budget on a schedule, so that the budget guestflow sees moves under its
// feet as it does when another app of the tenant is busy. It spends only
// the tenant-wide scope (its own app+tenant limits are its business), and
// its refused writes are not retried: a write it could not make is simply
// not made.
type neighbour struct {
	sched Schedule

	mu      sync.Mutex
	started time.Time // emulator clock at Start; offsets count from it
	last    time.Time // spent up to here
	owed    float64   // fraction of a write carried to the next tick

	stop chan struct{}
	done chan struct{}
}

// start begins spending at now, in the background until halt. Start and
// Close call them under the server's lock.
func (n *neighbour) start(s *Sim, now time.Time) {
	n.mu.Lock()
	n.started, n.last, n.owed = now, now, 0
	n.mu.Unlock()
	stop, done := make(chan struct{}), make(chan struct{})
	n.stop, n.done = stop, done
	go func() {
		defer close(done)
		t := time.NewTicker(neighbourTick)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				s.neighbourSpend()
			}
		}
	}()
}

func (n *neighbour) halt() {
	if n.stop == nil {
		return
	}
	close(n.stop)
	<-n.done
	n.stop, n.done = nil, nil
}

// neighbourSpend makes the writes the schedule owes since the last call,
// all at the emulator's now: after a clock jump (advance) they land at
// once, as a burst the window then holds for its whole Per.
func (s *Sim) neighbourSpend() {
	n := s.neighbour
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	now := s.now()
	if !now.After(n.last) {
		return
	}
	n.owed += n.sched.writes(n.last.Sub(n.started), now.Sub(n.started))
	n.last = now
	due := int(n.owed + 1e-9) // the sum of many slices may fall a hair short of a whole write
	if due == 0 {
		return
	}
	n.owed -= float64(due)
	ok := s.budgets.spend(scopeTenantWrite, "", due, now)
	s.stats.count(func(st *stats) {
		st.neighbourWrites += ok
		st.neighbourThrottled += due - ok
	})
}

// RestartNeighbour starts the neighbour's schedule over: its offsets count
// from now rather than from Start. The benchmark calls it as it publishes,
// so that the neighbour's steps fall where it wants them in the run
// whatever the workers took to start. Without a neighbour it does nothing.
func (s *Sim) RestartNeighbour() {
	n := s.neighbour
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	now := s.now()
	n.started, n.last, n.owed = now, now, 0
}
