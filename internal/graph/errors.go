package graph

import (
	"errors"
	"strconv"
	"strings"
	"time"

	abstractions "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/guestflow/guestflow/internal/failure"
)

// remote converts what the SDK returned into a *failure.Remote carrying the
// status, Graph's error code and message, the request-id Microsoft support
// asks for, and Retry-After. Errors that never reached Graph (DNS,
// connection, timeout) come back as status 0, which failure treats as
// retryable.
func remote(op string, err error) error {
	if err == nil {
		return nil
	}
	var marked *failure.Error
	if asRemote(err) != nil || errors.As(err, &marked) { // already classified: a token failure, the write budget
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
			if inner := main.GetInnerError(); inner != nil && r.RequestID == "" {
				r.RequestID = deref(inner.GetRequestId())
			}
		}
		fromHeaders(r, odata.GetResponseHeaders())
	case errors.As(err, &api):
		r.Status = api.GetStatusCode()
		fromHeaders(r, api.GetResponseHeaders())
	}
	return r
}

func fromHeaders(r *failure.Remote, h *abstractions.ResponseHeaders) {
	if h == nil {
		return
	}
	if v := first(h.Get("request-id")); v != "" {
		r.RequestID = v
	}
	r.RetryAfter = retryAfter(first(h.Get("Retry-After")))
}

// retryAfter parses Retry-After as seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := time.Parse(time.RFC1123, v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
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
