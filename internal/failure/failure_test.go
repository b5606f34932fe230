package failure_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/guestflow/guestflow/internal/failure"
)

func TestClassify(t *testing.T) {
	graph := func(status int, code, msg string) error {
		return &failure.Remote{Service: "graph", Op: "op", Status: status, Code: code, Message: msg, RequestID: "rid"}
	}
	kind := func(k failure.Kind, status int) error {
		return &failure.Remote{Service: "graph", Op: "op", Status: status, Kind: k}
	}
	tests := []struct {
		name      string
		err       error
		retryable bool
		reason    string
		after     time.Duration
	}{
		{"429 with Retry-After", &failure.Remote{Service: "graph", Status: 429, RetryAfter: 7 * time.Second}, true, failure.Throttled, 7 * time.Second},
		{"dataverse 429", &failure.Remote{Service: "dataverse", Status: 429}, true, failure.Throttled, 0},
		{"500", graph(500, "", ""), true, failure.GraphError, 0},
		{"502", graph(502, "", ""), true, failure.GraphError, 0},
		{"503", graph(503, "", ""), true, failure.GraphError, 0},
		{"504", graph(504, "", ""), true, failure.GraphError, 0},
		{"no answer", graph(0, "", "dial tcp: connection refused"), true, failure.GraphError, 0},
		{"400 bad request", graph(400, "Request_BadRequest", "Invalid value"), false, failure.GraphError, 0},
		{"401", graph(401, "InvalidAuthenticationToken", ""), false, failure.GraphError, 0},
		{"403", graph(403, "Authorization_RequestDenied", ""), false, failure.GraphError, 0},
		{"404 other", graph(404, "ErrorInvalidUser", "mailbox"), false, failure.GraphError, 0},
		{"not found is not lag unless the client says so", graph(404, "Request_ResourceNotFound", "Resource 'x' does not exist"), false, failure.GraphError, 0},
		{"replication lag", kind(failure.KindReplicationLag, 404), true, failure.ReplicationLag, 0},
		{"replication lag keeps Retry-After", &failure.Remote{Service: "graph", Status: 404, Kind: failure.KindReplicationLag, RetryAfter: time.Second}, true, failure.ReplicationLag, time.Second},
		{"sync pending", &failure.Remote{Service: "powerplatform", Status: 403, Kind: failure.KindNotSynced}, true, failure.UserNotSynced, 0},
		{"group missing", kind(failure.KindNotFoundGroup, 404), false, failure.UnknownGroup, 0},
		{"no seats", kind(failure.KindNoSeats, 400), false, failure.NoLicenseSeats, 0},
		{"credentials", kind(failure.KindCredentials, 401), false, failure.AuthFailed, 0},
		{"permission", kind(failure.KindPermission, 403), false, failure.PermissionDenied, 0},
		{"environment", &failure.Remote{Service: "powerplatform", Status: 404, Kind: failure.KindNotFoundEnvironment}, false, failure.InvalidConfig, 0},
		{"instance", &failure.Remote{Service: "dataverse", Status: 404, Kind: failure.KindNotFoundInstance}, false, failure.InvalidConfig, 0},
		{"sender", kind(failure.KindNotFoundSender, 404), false, failure.InvalidConfig, 0},
		{"malformed", failure.Malformed("dataverse", "find role", "business unit id", errors.New(`"x" is not a GUID`)), false, failure.InvalidRequest, 0},
		{"dataverse 404", &failure.Remote{Service: "dataverse", Status: 404, Message: "does not exist"}, false, failure.DataverseError, 0},
		{"token refused", &failure.Remote{Service: "entra", Status: 401}, false, failure.AuthFailed, 0},
		{"unknown error", errors.New("boom"), true, failure.Transient, 0},
		{"timeout", context.DeadlineExceeded, true, failure.Transient, 0},
		{"marked permanent wins over a 503", failure.Permanent(failure.NoLicenseSeats, graph(503, "", "")), false, failure.NoLicenseSeats, 0},
		{"wrapped mark", fmt.Errorf("ctx: %w", failure.Permanent(failure.UnknownRole, errors.New("x"))), false, failure.UnknownRole, 0},
		{"marked retry", failure.Retry(failure.UserNotSynced, errors.New("x"), time.Minute), true, failure.UserNotSynced, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := failure.Classify(tt.err)
			if v.Retryable != tt.retryable || v.Reason != tt.reason || v.After != tt.after {
				t.Errorf("Classify = %+v, want retryable %v reason %s after %v", v, tt.retryable, tt.reason, tt.after)
			}
		})
	}
	if v := failure.Classify(failure.Permanent(failure.GraphError, graph(400, "x", "y"))); v.Status != 400 || v.RequestID != "rid" {
		t.Errorf("status and request id must survive a mark: %+v", v)
	}
	if v := failure.Classify(failure.Retry(failure.UserNotSynced, errors.New("x"), time.Minute)); v.Deadline != time.Minute {
		t.Errorf("deadline lost: %+v", v)
	}
}

// TestEveryKindHasAVerdict keeps kinds and their reasons together: a kind
// Classify does not know would be judged by its status alone.
func TestEveryKindHasAVerdict(t *testing.T) {
	for _, k := range failure.Kinds {
		v := failure.Classify(&failure.Remote{Service: "graph", Status: 400, Kind: k})
		if v.Reason == failure.GraphError && k != failure.KindOther {
			t.Errorf("kind %q has no verdict of its own", k)
		}
	}
}

func TestRemoteErrorSaysWhatToFix(t *testing.T) {
	err := &failure.Remote{Service: "graph", Op: "assign license", Status: 400, Code: "Request_BadRequest",
		Message: "License assignment failed because the subscription does not have any available licenses.", RequestID: "r-1", Kind: failure.KindNoSeats}
	want := "graph: assign license: HTTP 400 Request_BadRequest: License assignment failed because the subscription does not have any available licenses. (request-id r-1); buy or free a seat of the license, then replay"
	if err.Error() != want {
		t.Errorf("got  %s\nwant %s", err.Error(), want)
	}
	if got := (&failure.Remote{Service: "dataverse", Op: "find role", Message: "dial tcp: refused"}).Error(); got != "dataverse: find role: no answer: dial tcp: refused" {
		t.Errorf("no answer: %s", got)
	}
	if got := failure.Malformed("dataverse", "find role", "business unit id", errors.New(`"x" is not a GUID`)).Error(); !strings.HasPrefix(got, `dataverse: find role: not sent: business unit id "x" is not a GUID; `) {
		t.Errorf("malformed: %s", got)
	}
}
