package graphsim

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// maxBody is Graph's request size limit (4 MB); it also bounds what a gzip
// body may expand to.
const maxBody = 4 << 20

// decode reads the request body as one JSON object into dst. kiota gzips
// request bodies by default, so Content-Encoding gzip is undone first; a body
// labelled gzip that is not (kiota-http-go issue 183) is a 400, as it would be
// at Microsoft. Property names outside allowed (other than @-annotations
// such as "@odata.type") are refused with OData's message, because a typo in
// a property name is silently ignored nowhere in Graph or Dataverse.
//
// Graph matches names case-insensitively (msgraph-sdk-go sends sendMail's
// parameters as "Message" and "SaveToSentItems", as Graph's metadata spells
// them); Dataverse's logical names are exact.
func (c *call) decode(dst any, allowed ...string) bool {
	status, msg := decodeBody(c.r, dst, allowed, !c.dataverse)
	if status == 0 {
		return true
	}
	code := "BadRequest"
	switch {
	case c.dataverse:
		code = "0x80060888"
	case c.bap && status == http.StatusBadRequest:
		code = "InvalidRequestContent"
	case status == http.StatusRequestEntityTooLarge:
		code = "RequestEntityTooLarge"
	case status == http.StatusUnsupportedMediaType:
		code = "UnsupportedMediaType"
	}
	c.fail(status, code, msg)
	return false
}

func decodeBody(r *http.Request, dst any, allowed []string, fold bool) (int, string) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type '%s' is not supported; send application/json.", ct)
		}
	}
	var src io.Reader = io.LimitReader(r.Body, maxBody+1)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(src)
		if err != nil {
			return http.StatusBadRequest, "The request body is labelled Content-Encoding: gzip but is not gzip data: " + err.Error()
		}
		src = io.LimitReader(zr, maxBody+1)
	default:
		return http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Encoding '%s' is not supported; send gzip or no encoding.", enc)
	}
	data, err := io.ReadAll(src)
	switch {
	case err != nil:
		return http.StatusBadRequest, "The request body could not be read: " + err.Error()
	case len(data) > maxBody:
		return http.StatusRequestEntityTooLarge, "The request body is larger than 4 MB."
	case len(bytes.TrimSpace(data)) == 0:
		return http.StatusBadRequest, "Empty Payload. JSON content expected."
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return http.StatusBadRequest, "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format. " + err.Error()
	}
	for name := range fields {
		if _, ok := canonical(allowed, name, fold); !ok && !strings.HasPrefix(name, "@") {
			return http.StatusBadRequest, fmt.Sprintf("The property '%s' does not exist on type '%s'. Make sure to only use property names that are defined by the type or mark the type as open type.", name, typeName(dst))
		}
	}
	if err := json.Unmarshal(data, dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return http.StatusBadRequest, fmt.Sprintf("Cannot convert a JSON %s to the type of property '%s'.", te.Value, te.Field)
		}
		return http.StatusBadRequest, "Unable to read JSON request payload: " + err.Error()
	}
	return 0, ""
}

// typeName names the OData type a request body stands for, for messages.
func typeName(dst any) string {
	if n, ok := dst.(interface{ odataType() string }); ok {
		return n.odataType()
	}
	return "the request body"
}

// canonical finds name in allowed, ignoring case when fold is set, and
// returns the allowed spelling.
func canonical(allowed []string, name string, fold bool) (string, bool) {
	for _, a := range allowed {
		if a == name || fold && strings.EqualFold(a, name) {
			return a, true
		}
	}
	return "", false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
