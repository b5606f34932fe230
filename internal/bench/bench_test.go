package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A worker that will not run must end the run at once with its reason,
// not after the run's timeout.
func TestRunEndsWhenAWorkerExits(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "refusing-worker")
	script := "#!/bin/sh\necho 'guestflow: --write-rate (-1) must be 0 (not paced) or more' >&2\nexit 1\n"
	if err := os.WriteFile(exe, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	_, err := Run(context.Background(), Options{N: 10, Replicas: 2, Exe: exe, Timeout: time.Minute}, Baseline)
	if err == nil {
		t.Fatal("a run without workers succeeded")
	}
	if !strings.Contains(err.Error(), "worker 0 exited") && !strings.Contains(err.Error(), "worker 1 exited") {
		t.Errorf("error %q does not say a worker exited", err)
	}
	if !strings.Contains(err.Error(), "--write-rate (-1)") {
		t.Errorf("error %q does not carry the worker's own message", err)
	}
	if d := time.Since(began); d > 20*time.Second {
		t.Errorf("took %s to notice", d)
	}
	if i := strings.Index(err.Error(), "worker logs kept in "); i < 0 {
		t.Errorf("error %q does not say where the logs are", err)
	} else {
		dir := strings.TrimSuffix(err.Error()[i+len("worker logs kept in "):], ")")
		if _, statErr := os.Stat(dir); statErr != nil {
			t.Errorf("the logs it names are gone: %v", statErr)
		}
		os.RemoveAll(dir)
	}
}

// TestCheckHoldsWritesToTheFloor: a run that spends more identity writes
// per onboarding than the procedure needs (plus the tolerance), or leaves
// an onboarding behind, fails its own check.
func TestCheckHoldsWritesToTheFloor(t *testing.T) {
	if f := writesFloor(3); f != 10.0/3 {
		t.Errorf("floor of sales, service, legacy = %v, want 10/3", f)
	}
	floor := writesFloor(300)
	ok := Result{Mode: "guestflow", Onboarded: 300, WritesPerOnboarding: floor * 1.01, WritesFloor: floor}
	if err := ok.Check(300); err != nil {
		t.Errorf("1 %% above the floor: %v", err)
	}
	over := ok
	over.WritesPerOnboarding = floor * 1.05
	if err := over.Check(300); err == nil || !strings.Contains(err.Error(), "above the floor") {
		t.Errorf("5 %% above the floor passed: %v", err)
	}
	short := ok
	short.Onboarded = 299
	if err := short.Check(300); err == nil || !strings.Contains(err.Error(), "299 of 300") {
		t.Errorf("a missing onboarding passed: %v", err)
	}
}

// TestRecoveryAndBound: the neighbour binds when the tenant's writes reach
// its budget; recovery is when guestflow's writes are back to 90 % of their
// rate before it.
func TestRecoveryAndBound(t *testing.T) {
	var pts []point
	writes, neighbour := 0, 0
	for i := 0; i <= 300; i++ { // 30 s, a sample every 100 ms
		at := time.Duration(i) * 100 * time.Millisecond
		switch {
		case at <= 10*time.Second: // 10 writes/s alone
			writes++
		case at <= 20*time.Second: // 7/s beside the neighbour's 3/s
			if i%10 < 7 {
				writes++
			} else {
				neighbour++
			}
		case at <= 22*time.Second: // 5/s as it comes back
			if i%2 == 0 {
				writes++
			}
		default:
			writes++
		}
		pts = append(pts, point{at: at, writes: writes, neighbor: neighbour})
	}
	if !bound(pts, 10*time.Second, 20*time.Second, 10) {
		t.Error("10 writes/s between them against a budget of 10/s: not bound")
	}
	if bound(pts, 10*time.Second, 20*time.Second, 20) {
		t.Error("10 writes/s between them against a budget of 20/s: bound")
	}
	// Back to 10/s from 22 s: the trailing second is at 9/s (90 %) at 22.8 s.
	if got := recovery(pts, 10*time.Second, 20*time.Second, 30*time.Second); got < 2.5 || got > 3.0 {
		t.Errorf("recovery %vs after the neighbour stopped, want 2.5–3", got)
	}
	if got := recovery(pts, 10*time.Second, 20*time.Second, 21*time.Second); got != -1 {
		t.Errorf("recovery %vs in a run that ended before it, want -1", got)
	}
}

func TestSubjectClassDropsIDs(t *testing.T) {
	const ack = "$JS.ACK.KV_GUESTFLOW_THROTTLE.watcher.1.2.3.4.0"
	for _, tc := range []struct{ subject, reply, want string }{
		{"$KV.GUESTFLOW_THROTTLE.graph.mail.slot.1", ack, "GUESTFLOW_THROTTLE watch graph.mail.slot"},
		{"$KV.GUESTFLOW_THROTTLE.graph.mail.slot.1", "_INBOX.x.y", "GUESTFLOW_THROTTLE put graph.mail.slot"},
		{"guestflow.user.licensed", "$JS.ACK.GUESTFLOW.role.1.2.3.4.5.6", "guestflow.user.licensed delivered"},
		{"guestflow.user.licensed", "_INBOX.x.y", "guestflow.user.licensed"},
	} {
		if got := subjectClass(tc.subject, tc.reply); got != tc.want {
			t.Errorf("subjectClass(%q, %q) = %q, want %q", tc.subject, tc.reply, got, tc.want)
		}
	}
	for subject, want := range map[string]string{
		"_INBOX.abc.def": "_INBOX",
		"$KV.GUESTFLOW_THROTTLE.graph.pace.writes":                                          "GUESTFLOW_THROTTLE put graph.pace.writes",
		"$KV.GUESTFLOW_INDEX.o.0123abcd.42":                                                 "GUESTFLOW_INDEX put o",
		"$KV.GUESTFLOW_LEASES.role.17":                                                      "GUESTFLOW_LEASES put role",
		"$JS.API.DIRECT.GET.KV_GUESTFLOW_THROTTLE.$KV.GUESTFLOW_THROTTLE.graph.mail.slot.2": "GUESTFLOW_THROTTLE get graph.mail.slot",
		"$JS.API.DIRECT.GET.KV_GUESTFLOW_MEMO.$KV.GUESTFLOW_MEMO.invite.abc":                "GUESTFLOW_MEMO get invite",
		"$JS.API.CONSUMER.MSG.NEXT.GUESTFLOW.invite":                                        "$JS.API.CONSUMER.MSG",
		"$JS.ACK.GUESTFLOW.role.1.2.3.4.5.6":                                                "ack role",
		"guestflow.user.joined":                                                             "guestflow.user.joined",
	} {
		if got := subjectClass(subject, ""); got != want {
			t.Errorf("subjectClass(%q) = %q, want %q", subject, got, want)
		}
	}
}
