package bulk

import (
	"encoding/csv"
	"io"
	"strconv"
	"strings"
)

// ResultHeader is the result file's header (docs/cli.md).
var ResultHeader = []string{"line", "email", "status", "onboardingid", "error"}

// WriteResults writes the result file: one row per data row, in the order
// given. onboardingid is set for every row that became an event, including
// one whose publish failed: its PubAck may only have been lost, and the id
// is what `guestflow status` looks it up by.
//
// The cells that carry what the input file said (email, onboardingid, and
// error, which quotes cells) are neutralised against formula injection: the
// result file is made to be opened in a spreadsheet, and a cell such as
// =HYPERLINK(…) from a hostile sheet would run there.
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
		if err := cw.Write([]string{strconv.Itoa(r.Line), inert(r.Email), string(r.Status), inert(r.ID), inert(msg)}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// inert prefixes a cell that a spreadsheet would read as a formula with a
// single quote, as OWASP recommends for CSV injection: a leading =, +, -, @,
// tab or carriage return. A legitimate value starting with "-" gets the
// quote too; spreadsheets show it without, and the rule is only safe when
// it has no exceptions.
func inert(cell string) string {
	if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
		return "'" + cell
	}
	return cell
}
