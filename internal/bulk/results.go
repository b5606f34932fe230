package bulk

import (
	"encoding/csv"
	"io"
	"strconv"
)

// ResultHeader is the result file's header (contract §5).
var ResultHeader = []string{"line", "email", "status", "onboardingid", "error"}

// WriteResults writes the result file: one row per data row, in the order
// given. onboardingid is set for every row that became an event, including
// one whose publish failed: its PubAck may only have been lost, and the id
// is what `guestflow status` looks it up by.
func WriteResults(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(ResultHeader); err != nil {
		return err
	}
	for _, r := range rows {
		msg := ""
		if r.Err != nil {
			msg = r.Err.Error()
		}
		if err := cw.Write([]string{strconv.Itoa(r.Line), r.Email, string(r.Status), r.ID, msg}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
