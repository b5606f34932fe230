// Package bulk reads the Azure portal's bulk-invite CSV template (docs/cli.md)
// into validated joined data, one Row per data row, and writes the per-row
// result file. It knows nothing about NATS: `guestflow import` publishes the
// valid rows and records what happened to each.
//
// The file is the template as the portal exports it: a first line
// "version:v1.0" (trailing commas and a UTF-8 byte order mark are tolerated),
// a header row whose columns are matched by the name in square brackets
// (case-insensitive, in any order), then the data rows. Besides what Parse
// reports as a Row, it skips two kinds of record that are not data rows:
//
//   - the template's examples row, whose first cell starts with "Example:"
//     (Microsoft's template ships one and tells people to delete it; left in,
//     it would only ever be rejected). It is named in File.Notes and gets no
//     result row, because the result file's statuses are fixed by the
//     contract and none of them means "not a data row";
//   - records whose every cell is blank, which spreadsheets leave behind as
//     lines of bare commas.
//
// A record that is not valid CSV makes the whole file unreadable rather than
// one row bad: after a stray quote nobody can say where the next row starts,
// and publishing a guess would onboard the wrong people.
package bulk

import (
	"errors"
	"strings"

	"github.com/guestflow/guestflow/pkg/events"
)

// Status is what became of a data row; the values are the result file's.
type Status string

// Statuses. Parse leaves a row Valid, Duplicate or Rejected; the importer
// turns Valid into Published, into AlreadyPublished when the broker reports
// the publish a duplicate (the same file imported again within the
// stream's duplicate window: the event is stored once, from the first
// import), or, when the publish fails, into Rejected.
const (
	Valid            Status = "valid"
	Published        Status = "published"
	AlreadyPublished Status = "already_published"
	Duplicate        Status = "duplicate"
	Rejected         Status = "rejected"
)

// Row is one data row of the file.
type Row struct {
	// Line is the physical line the record starts on, 1-based, counting
	// the version line, so a person can find it in an editor.
	Line int
	// Email is the [inviteeEmail] cell as written (trimmed), so the result
	// file matches the sheet the operator has open.
	Email  string
	Status Status
	// ID is the joined event's id, and so the onboarding id; set for every
	// row that became an event (see EventID).
	ID string
	// Joined is the validated, normalised data of a Valid row.
	Joined events.Joined
	// Err says why a row is Rejected, Duplicate or AlreadyPublished.
	Err error
}

// File is a parsed bulk-invite file.
type File struct {
	Rows []Row
	// Notes are things the operator should know that are not a row's
	// problem: the skipped examples row, header columns nobody reads.
	Notes []string
}

// Defaults fill a row's empty or missing cells; the importer takes them from
// its flags. Names have none on purpose: a guest's name is not a property of
// the batch.
type Defaults struct {
	Instance      string
	UsageLocation string
	License       string
	Roles         []string
}

// Options are what Parse needs beyond the file.
type Options struct {
	Defaults Defaults
	// Instances are the configured instance names. When empty, rows are
	// not checked against them and an unknown instance is left to the
	// invite step, which dead-letters it as unknown_instance.
	Instances []string
}

// Problems is every reason one row was rejected, each a *events.FieldError
// naming the field, so a row can be fixed in one round.
type Problems []error

// Error renders the problems on one line, for stderr and the result file.
func (p Problems) Error() string {
	s := make([]string, len(p))
	for i, e := range p {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

// Unwrap lets errors.As find each *events.FieldError.
func (p Problems) Unwrap() []error { return p }

// ErrUnreadable marks a file that cannot be imported at all: no version
// line, no [inviteeEmail] column, broken CSV.
var ErrUnreadable = errors.New("unreadable bulk-invite file")
