package bulk

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestEventIDsFollowTheFileAndTheLine(t *testing.T) {
	data := csvFile(fullHeader, "ana@fabrikam.com,,,,Ana,Silva,PT,sales", "liam@contoso.example,,,,Liam,O'Brien,IE,service")
	a, b := parseOK(t, data, Options{}), parseOK(t, bytes.Clone(data), Options{})
	for i := range a.Rows {
		if a.Rows[i].ID != b.Rows[i].ID {
			t.Errorf("line %d: ids %s and %s for the same bytes", a.Rows[i].Line, a.Rows[i].ID, b.Rows[i].ID)
		}
		if _, err := uuid.Parse(a.Rows[i].ID); err != nil {
			t.Errorf("id %q: %v", a.Rows[i].ID, err)
		}
	}
	if a.Rows[0].ID == a.Rows[1].ID {
		t.Error("two lines, one id")
	}
	if want := EventID(sha256.Sum256(data), 3); a.Rows[0].ID != want {
		t.Errorf("id %s, want EventID(sha256(file), 3) = %s", a.Rows[0].ID, want)
	}
	// The same row in a changed file is a new batch.
	changed := parseOK(t, []byte(strings.Replace(string(data), "IE", "GB", 1)), Options{})
	if changed.Rows[0].ID == a.Rows[0].ID {
		t.Error("a changed file kept its ids")
	}
}
