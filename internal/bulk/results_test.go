package bulk

import (
	"bytes"
	"encoding/csv"
	"errors"
	"reflect"
	"testing"

	"github.com/guestflow/guestflow/pkg/events"
)

func TestWriteResults(t *testing.T) {
	rows := []Row{
		{Line: 3, Email: "ana@fabrikam.com", Status: Published, ID: "id-3"},
		{Line: 4, Email: "Ana@Fabrikam.com", Status: Duplicate, Err: errors.New("same address as line 3; skipped")},
		{Line: 5, Email: "liam@contoso.example", Status: Rejected, Err: Problems{
			&events.FieldError{Field: "usageLocation", Problem: `"UK" is not a country code`},
			&events.FieldError{Field: "sendEmail", Problem: "bad, really"}}},
	}
	var buf bytes.Buffer
	if err := WriteResults(&buf, rows); err != nil {
		t.Fatal(err)
	}
	got, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatalf("result file is not CSV: %v\n%s", err, buf.String())
	}
	want := [][]string{
		{"line", "email", "status", "onboardingid", "error"},
		{"3", "ana@fabrikam.com", "published", "id-3", ""},
		{"4", "Ana@Fabrikam.com", "duplicate", "", "same address as line 3; skipped"},
		{"5", "liam@contoso.example", "rejected", "", `usageLocation: "UK" is not a country code; sendEmail: bad, really`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("results\n%q\nwant\n%q", got, want)
	}
}
