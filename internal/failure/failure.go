// Package failure is the one place that decides what a failed step means:
// retry later (and how much later) or give up and dead-letter with a stable
// reason code. Steps only mark the exceptions with Permanent and Retry;
// remote calls report what Microsoft answered as *Remote; Classify does the
// rest.
package failure

import (
	"errors"
	"fmt"
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
	// UnknownBusinessUnit: an instance's businessUnit names no business
	// unit of its environment.
	UnknownBusinessUnit = "unknown_business_unit"
	// InvalidConfig: a configured value Microsoft does not know (an
	// environmentId, an instance URL, the notify sender's mailbox).
	InvalidConfig = "invalid_config"
	// PermissionDenied: the app lacks a Graph permission or a Dataverse
	// security role for a call.
	PermissionDenied = "permission_denied"
	// InvalidRequest: guestflow refused to send a malformed value (a
	// user id that is not a GUID); the error names it.
	InvalidRequest = "invalid_request"
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
	OnboardingIDReused, UnknownBusinessUnit, InvalidConfig, PermissionDenied,
	InvalidRequest, Transient,
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
// Platform API, as the service answered it, translated by the client that
// made the call.
type Remote struct {
	Service    string // "graph", "dataverse", "powerplatform" or "entra" (tokens)
	Op         string // what was attempted, e.g. "assign license"
	Status     int    // HTTP status; 0 when no response arrived
	Code       string // the error body's code
	Message    string // the error body's message
	RequestID  string // request-id / x-ms-service-request-id
	RetryAfter time.Duration
	// Kind is what the answer means for this call, when the client could
	// tell more than the status says (KindOther otherwise).
	Kind Kind
}

func (r *Remote) Error() string {
	s := fmt.Sprintf("%s: %s: HTTP %d", r.Service, r.Op, r.Status)
	switch {
	case r.Kind == KindMalformed:
		s = fmt.Sprintf("%s: %s: not sent", r.Service, r.Op)
	case r.Status == 0:
		s = fmt.Sprintf("%s: %s: no answer", r.Service, r.Op)
	}
	if r.Code != "" {
		s += " " + r.Code
	}
	if r.Message != "" {
		s += ": " + r.Message
	}
	if r.RequestID != "" {
		s += " (request-id " + r.RequestID + ")"
	}
	if fix := kinds[r.Kind].fix; fix != "" {
		s += "; " + fix
	}
	return s
}

// Kind is what a remote failure means beyond its status. Only the client
// that made a call can tell, because the same status and code mean
// different things for different calls: Graph's 404 "Resource '…' does not
// exist" is a user still replicating when it names the user, and a
// missing security group when it names the group. Clients set the kind;
// Classify alone turns it into a verdict and a reason.
type Kind string

// The kinds clients report.
const (
	// KindOther: nothing beyond the status; Classify judges the status.
	KindOther Kind = ""
	// KindReplicationLag: an object that exists has not reached every
	// directory replica yet (a user just invited).
	KindReplicationLag Kind = "replication-lag"
	// KindNotFoundGroup: the security group a call names does not exist.
	KindNotFoundGroup Kind = "not-found-group"
	// KindNoSeats: the SKU has no free seat.
	KindNoSeats Kind = "no-seats"
	// KindNotSynced: Power Platform refuses to sync a user whose license
	// or group membership has not reached it yet.
	KindNotSynced Kind = "not-synced"
	// KindDuplicate: Dataverse already has the row (a role association).
	KindDuplicate Kind = "duplicate"
	// KindCredentials: Entra ID or a service refused the app's identity.
	KindCredentials Kind = "credentials"
	// KindPermission: the app is known but lacks a permission or a
	// security role for the call.
	KindPermission Kind = "permission"
	// KindNotFoundEnvironment: the instance's environmentId names no
	// Power Platform environment of the tenant.
	KindNotFoundEnvironment Kind = "not-found-environment"
	// KindNotFoundInstance: the instance URL names no Dataverse
	// organization.
	KindNotFoundInstance Kind = "not-found-instance"
	// KindNotFoundSender: the notify sender has no usable mailbox.
	KindNotFoundSender Kind = "not-found-sender"
	// KindMalformed: the client refused to send a value that is not what
	// the API takes (not a GUID where one goes unquoted); Status is 0
	// and no request was made.
	KindMalformed Kind = "malformed"
)

// Kinds lists every kind above but KindOther.
var Kinds = []Kind{
	KindReplicationLag, KindNotFoundGroup, KindNoSeats, KindNotSynced, KindDuplicate, KindCredentials,
	KindPermission, KindNotFoundEnvironment, KindNotFoundInstance, KindNotFoundSender, KindMalformed,
}

// kinds is the verdict of each kind; a kind that is not here (KindOther)
// is judged by its status. fix is the sentence that tells the operator
// what to do, appended to the error a dead letter carries.
var kinds = map[Kind]struct {
	retryable bool
	reason    string
	fix       string
}{
	KindReplicationLag:      {true, ReplicationLag, ""},
	KindNotSynced:           {true, UserNotSynced, ""},
	KindNotFoundGroup:       {false, UnknownGroup, "the instance's securityGroupId names no group in the tenant: fix it, then replay"},
	KindNoSeats:             {false, NoLicenseSeats, "buy or free a seat of the license, then replay"},
	KindDuplicate:           {false, DataverseError, ""},
	KindCredentials:         {false, AuthFailed, "fix the app's tenant id, client id, secret or federation, then replay"},
	KindPermission:          {false, PermissionDenied, "grant the app the permission or security role the call needs (docs/configuration.md lists them), then replay"},
	KindNotFoundEnvironment: {false, InvalidConfig, "fix the instance's environmentId, then replay"},
	KindNotFoundInstance:    {false, InvalidConfig, "fix the instance's url, then replay"},
	KindNotFoundSender:      {false, InvalidConfig, "notify.sender must be a licensed mailbox of the tenant: fix it, then replay"},
	KindMalformed:           {false, InvalidRequest, "fix the value in the event or the configuration it came from, then replay"},
}

// KindOf returns the kind of the remote failure in err's chain, or
// KindOther.
func KindOf(err error) Kind {
	var r *Remote
	if errors.As(err, &r) {
		return r.Kind
	}
	return KindOther
}

// Malformed reports a value a client refused to send; what names it
// ("userId", "business unit id").
func Malformed(service, op, what string, err error) error {
	return &Remote{Service: service, Op: op, Kind: KindMalformed, Message: what + " " + err.Error()}
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

// Classify decides whether err is worth retrying, and why. An explicit
// mark from a step wins; then a remote answer is judged by its kind, else
// its status (retryableStatus); anything else — timeouts, connection
// errors, a broker hiccup — is retryable, because a bug that is retried a
// few times and then dead-lettered loses nothing, while a transient error
// dead-lettered at once needs a human.
func Classify(err error) Verdict {
	var v Verdict
	var r *Remote
	if errors.As(err, &r) {
		v.Status, v.RequestID, v.After = r.Status, r.RequestID, r.RetryAfter
		if k, ok := kinds[r.Kind]; ok {
			v.Retryable, v.Reason = k.retryable, k.reason
		} else {
			v.Retryable, v.Reason = retryableStatus(r.Status), statusReason(r)
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
// cannot help, except the kinds (replication lag, a sync still pending) the
// clients recognise.
func retryableStatus(status int) bool {
	switch status {
	case 0, 429, 500, 502, 503, 504:
		return true
	}
	return false
}

// statusReason is the reason of a remote failure the client could not say
// more about than its status.
func statusReason(r *Remote) string {
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
