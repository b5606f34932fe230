// Package failure is the one place that decides what a failed step means:
// retry later (and how much later) or give up and dead-letter with a stable
// reason code. Steps only mark the exceptions with Permanent and Retry;
// remote calls report what Microsoft answered as *Remote; Classify does the
// rest.
package failure

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Reason codes of the Guestflow-Reason dead-letter header (docs/dead-letters.md).
// They are stable: operators filter on them and alerts match them.
const (
	InvalidEvent    = "invalid_event"
	UnknownInstance = "unknown_instance"
	UnknownSKU      = "unknown_sku"
	NoLicenseSeats  = "no_license_seats"
	UnknownRole     = "unknown_role"
	// UnknownGroup: an instance's securityGroupId names no group.
	UnknownGroup   = "unknown_group"
	UserNotSynced  = "user_not_synced"
	Throttled      = "throttled"
	GraphError     = "graph_error"
	DataverseError = "dataverse_error"
	// AttemptsExhausted: a retryable failure failed --max-failures times
	// (the worker's MaxFailures), or workers died during that many
	// attempts of the input. Attempts are deliveries; only the failed
	// ones count.
	AttemptsExhausted = "attempts_exhausted"
	// AuthFailed: Entra ID refused the app's credentials; fix the client
	// id, secret or federation, then replay.
	AuthFailed = "auth_failed"
	// ReplicationLag: Graph does not see an object it just created yet.
	ReplicationLag = "replication_lag"
	// RoleNotAllowed, LicenseNotAllowed, RedirectNotAllowed and
	// MemberNotAllowed: the event asked for more than the instance's
	// allow-lists grant. The configuration, not the event, decides what
	// may be granted; fix the event or widen the named key, then replay.
	RoleNotAllowed     = "role_not_allowed"
	LicenseNotAllowed  = "license_not_allowed"
	RedirectNotAllowed = "redirect_not_allowed"
	MemberNotAllowed   = "member_not_allowed"
	// IdentityMismatch: a later event names a user that is not the one
	// the invite step found for this onboarding's address.
	IdentityMismatch = "identity_mismatch"
	// OnboardingIDReused: an onboarding id already belongs to another
	// address; a new onboarding needs a new id.
	OnboardingIDReused = "onboarding_id_reused"
	// Transient is the reason of a retryable failure nobody named, e.g. a
	// connection reset. It only reaches a dead letter through
	// AttemptsExhausted.
	Transient = "transient"
)

// Reasons lists every reason code above, in the order of the const block.
// docs/dead-letters.md has one table row per entry; docs_test.go keeps the
// three (constants, this list, the table) in step.
var Reasons = []string{
	InvalidEvent, UnknownInstance, UnknownSKU, NoLicenseSeats, UnknownRole,
	UnknownGroup, UserNotSynced, Throttled, GraphError, DataverseError,
	AttemptsExhausted, AuthFailed, ReplicationLag, RoleNotAllowed,
	LicenseNotAllowed, RedirectNotAllowed, MemberNotAllowed, IdentityMismatch,
	OnboardingIDReused, Transient,
}

// Error is a failure a step has classified itself.
type Error struct {
	Reason    string
	Err       error
	permanent bool
	// Deadline, when set, replaces the failure limit (--max-failures)
	// for a retryable failure: keep retrying until this long after the input was first
	// published (the role step's wait for the Dataverse sync).
	Deadline time.Duration
	// After is the delay before the retry, when the failure knows it.
	After time.Duration
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Permanent marks err as one that no retry can fix: the input goes to the
// dead-letter stream with reason.
func Permanent(reason string, err error) error {
	return &Error{Reason: reason, Err: err, permanent: true}
}

// Retry marks err as retryable with a reason of its own, kept until deadline
// after the input was first published (0: the runtime's failure limit,
// --max-failures).
func Retry(reason string, err error, deadline time.Duration) error {
	return &Error{Reason: reason, Err: err, Deadline: deadline}
}

// Throttle marks a call that was not made because the tenant's shared
// Graph budget says to wait: retry after after. Throttling is bounded by the
// runtime's throttle deadline, not by --max-failures, because waiting for
// budget is not failing.
func Throttle(err error, after time.Duration) error {
	return &Error{Reason: Throttled, Err: err, After: after}
}

// Remote is a failed call to Microsoft Graph, Dataverse or the Power
// Platform API, as the service answered it.
type Remote struct {
	Service    string // "graph", "dataverse", "powerplatform" or "entra" (tokens)
	Op         string // what was attempted, e.g. "assign license"
	Status     int    // HTTP status; 0 when no response arrived
	Code       string // the error body's code
	Message    string // the error body's message
	RequestID  string // request-id / x-ms-service-request-id
	RetryAfter time.Duration
}

func (r *Remote) Error() string {
	s := fmt.Sprintf("%s: %s: HTTP %d", r.Service, r.Op, r.Status)
	if r.Code != "" {
		s += " " + r.Code
	}
	if r.Message != "" {
		s += ": " + r.Message
	}
	if r.RequestID != "" {
		s += " (request-id " + r.RequestID + ")"
	}
	return s
}

// Verdict is what the runtime does with a failure.
type Verdict struct {
	Retryable bool
	Reason    string
	// After is the delay the service asked for (Retry-After); 0 lets the
	// runtime choose an exponential backoff.
	After     time.Duration
	Deadline  time.Duration
	Status    int
	RequestID string
}

// Classify decides whether err is worth retrying. An explicit mark from a
// step wins; then a remote answer is judged by its status (retryableStatus);
// anything else — timeouts, connection errors, a broker hiccup — is
// retryable, because a bug that is retried a few times and then
// dead-lettered loses nothing, while a transient error dead-lettered at once
// needs a human.
func Classify(err error) Verdict {
	var v Verdict
	var r *Remote
	if errors.As(err, &r) {
		v.Status, v.RequestID, v.After = r.Status, r.RequestID, r.RetryAfter
		v.Retryable = retryableStatus(r.Status)
		v.Reason = remoteReason(r)
		if replicationLag(r) {
			v.Retryable, v.Reason = true, ReplicationLag
		}
	} else {
		v.Retryable, v.Reason = true, Transient
	}
	var e *Error
	if errors.As(err, &e) {
		v.Retryable = !e.permanent
		v.Reason = e.Reason
		v.Deadline = e.Deadline
		if e.After > 0 {
			v.After = e.After
		}
	}
	return v
}

// retryableStatus is Knative's SelectiveRetry for Microsoft's services:
// 429 is throttling (Graph, Dataverse service protection) and the 5xx
// family are outages or gateway timeouts that Microsoft documents as
// transient. A status of 0 means no answer arrived (connection refused,
// reset, timeout). Every other 4xx is the request's fault and repeating it
// cannot help, except the replication-lag cases that steps mark themselves.
func retryableStatus(status int) bool {
	switch status {
	case 0, 429, 500, 502, 503, 504:
		return true
	}
	return false
}

func remoteReason(r *Remote) string {
	switch {
	case r.Status == 429:
		return Throttled
	case r.Service == "entra":
		return AuthFailed
	case r.Service == "dataverse" || r.Service == "powerplatform":
		return DataverseError
	default:
		return GraphError
	}
}

// replicationLag recognises Graph's answers about an object that exists but
// has not reached every directory replica: Request_ResourceNotFound on a
// user just invited, or "Resource '…' does not exist or one of its queried
// reference-property objects are not present" / "… don't exist" on a
// reference to it. Retrying is right; a truly unknown id is dead-lettered
// once it has failed --max-failures times. Other "does not exist" messages (an unknown
// property in a request body) are the request's fault and stay permanent.
func replicationLag(r *Remote) bool {
	if r.Service != "graph" || (r.Status != 400 && r.Status != 404) {
		return false
	}
	return r.Code == "Request_ResourceNotFound" ||
		strings.Contains(r.Message, "queried reference-property objects are not present") ||
		strings.Contains(r.Message, "don't exist")
}
