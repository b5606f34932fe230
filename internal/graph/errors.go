package graph

import (
	"errors"
	"net/http"
	"strings"
	"time"

	abstractions "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/wire"
)

// remote translates what the SDK returned into a *failure.Remote carrying
// the status, Graph's error code and message, the request-id Microsoft
// support asks for, Retry-After, and the kind of failure Graph's answer
// means for any call (kindOf); the calls refine the kind where their own
// answers say more (a missing group, no seats). Errors that never reached
// Graph (DNS, connection, timeout) come back as status 0, which failure
// treats as retryable.
func remote(op string, err error) error {
	if err == nil {
		return nil
	}
	var marked *failure.Error
	if asRemote(err) != nil || errors.As(err, &marked) { // already translated: a token failure, the write budget
		return err
	}
	r := &failure.Remote{Service: "graph", Op: op, Message: err.Error()}
	var odata *odataerrors.ODataError
	var api abstractions.ApiErrorable
	switch {
	case errors.As(err, &odata):
		r.Status = odata.GetStatusCode()
		r.Message = ""
		if main := odata.GetErrorEscaped(); main != nil {
			r.Code = deref(main.GetCode())
			r.Message = deref(main.GetMessage())
			if inner := main.GetInnerError(); inner != nil {
				r.RequestID = deref(inner.GetRequestId())
			}
		}
		fromHeaders(r, odata.GetResponseHeaders())
	case errors.As(err, &api):
		r.Status = api.GetStatusCode()
		fromHeaders(r, api.GetResponseHeaders())
	}
	r.Kind = kindOf(r)
	return r
}

// kindOf is what an answer means whatever the call: Entra refused the
// token (401), the app lacks a permission (403), or an object that exists
// has not reached every directory replica yet. Graph reports the last as
// Request_ResourceNotFound on a user just invited, or "Resource '…' does
// not exist or one of its queried reference-property objects are not
// present" / "… don't exist" on a reference to it (docs/dead-letters.md).
// Other "does not exist" texts (an unknown property in a request body) are
// the request's fault.
func kindOf(r *failure.Remote) failure.Kind {
	switch {
	case r.Status == http.StatusUnauthorized:
		return failure.KindCredentials
	case r.Status == http.StatusForbidden:
		return failure.KindPermission
	case r.Status == http.StatusBadRequest || r.Status == http.StatusNotFound:
		if r.Code == "Request_ResourceNotFound" ||
			strings.Contains(r.Message, "queried reference-property objects are not present") ||
			strings.Contains(r.Message, "don't exist") {
			return failure.KindReplicationLag
		}
	}
	return failure.KindOther
}

// refine sets the kind of err's remote failure to k when match says the
// answer means it, and returns err.
func refine(err error, k failure.Kind, match func(*failure.Remote) bool) error {
	if r := asRemote(err); r != nil && match(r) {
		r.Kind = k
	}
	return err
}

func fromHeaders(r *failure.Remote, h *abstractions.ResponseHeaders) {
	if h == nil {
		return
	}
	if v := first(h.Get("request-id")); v != "" {
		r.RequestID = v
	}
	r.RetryAfter = wire.RetryAfter(first(h.Get("Retry-After")), time.Now())
}

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func asRemote(err error) *failure.Remote {
	var r *failure.Remote
	if errors.As(err, &r) {
		return r
	}
	return nil
}
