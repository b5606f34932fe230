package events_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/guestflow/guestflow/pkg/events"
)

// fieldErrors flattens an error tree into its FieldErrors, failing the test
// on any leaf that is not one.
func fieldErrors(t *testing.T, err error) []*events.FieldError {
	t.Helper()
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var all []*events.FieldError
		for _, e := range joined.Unwrap() {
			all = append(all, fieldErrors(t, e)...)
		}
		return all
	}
	var fe *events.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %q (%T) is not a *FieldError", err, err)
	}
	return []*events.FieldError{fe}
}

// joinedJSON renders the minimal valid joined data with set applied on top
// (a nil value becomes JSON null) and the fields in del removed.
func joinedJSON(t testing.TB, set map[string]any, del ...string) []byte {
	t.Helper()
	m := map[string]any{
		"email":         "ana.silva@fabrikam.com",
		"givenName":     "Ana",
		"surname":       "Silva",
		"usageLocation": "PT",
		"instance":      "sales",
	}
	for k, v := range set {
		m[k] = v
	}
	for _, k := range del {
		delete(m, k)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ptr[T any](v T) *T { return &v }
