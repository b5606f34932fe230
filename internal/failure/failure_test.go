package failure_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/guestflow/guestflow/internal/failure"
)

func TestClassify(t *testing.T) {
	graph := func(status int, code, msg string) error {
		return &failure.Remote{Service: "graph", Op: "op", Status: status, Code: code, Message: msg, RequestID: "rid"}
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
		{"replication lag 404", graph(404, "Request_ResourceNotFound", "Resource 'x' does not exist"), true, failure.ReplicationLag, 0},
		{"replication lag reference", graph(400, "Request_BadRequest", "Resource 'x' does not exist or one of its queried reference-property objects are not present."), true, failure.ReplicationLag, 0},
		{"unknown body property is not lag", graph(400, "BadRequest", "The property 'x' does not exist on type 'microsoft.graph.user'."), false, failure.GraphError, 0},
		{"reference not there yet", graph(400, "Request_BadRequest", "One or more of the objects don't exist."), true, failure.ReplicationLag, 0},
		{"dataverse 404 is not lag", &failure.Remote{Service: "dataverse", Status: 404, Message: "does not exist"}, false, failure.DataverseError, 0},
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
