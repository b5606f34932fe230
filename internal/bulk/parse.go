package bulk

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// bom is the UTF-8 byte order mark Excel writes at the start of "CSV UTF-8".
var bom = []byte("\ufeff")

// Parse reads a whole bulk-invite file. It returns ErrUnreadable (wrapped,
// with the line and what to fix) when the file as a whole cannot be used;
// otherwise one Row per data row, in file order, each Valid, Duplicate or
// Rejected.
//
// A row is Duplicate when an earlier row has the same address (compared
// case-insensitively), whether or not that earlier row was valid: fixing
// the earlier row and importing again then onboards the person once, where
// "first valid row wins" would onboard them a second time under a new id.
func Parse(data []byte, o Options) (File, error) {
	sum := sha256.Sum256(data)
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, bom)))
	r.FieldsPerRecord = -1    // the version line has one cell, rows may be short
	r.TrimLeadingSpace = true // "a@b.com, https://…" as people type it
	read := func() ([]string, int, error) {
		rec, err := r.Read()
		if err != nil {
			return nil, 0, err
		}
		line, _ := r.FieldPos(0) // the line the record starts on, however many it spans
		return rec, line, nil
	}

	var f File
	rec, line, err := read()
	if err != nil {
		return f, unreadable(err, "the file is empty")
	}
	if err := checkVersion(line, rec); err != nil {
		return f, err
	}
	if rec, line, err = read(); err != nil {
		return f, unreadable(err, "the file has no header row after its version line")
	}
	h, notes, err := parseHeader(line, rec)
	if err != nil {
		return f, err
	}
	f.Notes = notes
	first := map[string]int{} // address → line of its first row
	for {
		rec, line, err := read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return File{}, unreadable(err, "")
		}
		if blank(rec) {
			continue
		}
		if isExample(rec) {
			f.Notes = append(f.Notes, fmt.Sprintf("line %d: skipped the template's examples row", line))
			continue
		}
		row := Row{Line: line}
		row.Email, _ = h.cell(rec, "inviteeemail")
		addr := strings.ToLower(row.Email)
		if at, dup := first[addr]; dup && addr != "" {
			row.Status, row.Err = Duplicate, fmt.Errorf("same address as line %d; skipped", at)
			f.Rows = append(f.Rows, row)
			continue
		}
		if addr != "" {
			first[addr] = line
		}
		if j, probs := h.joined(rec, o); probs != nil {
			row.Status, row.Err = Rejected, probs
		} else {
			row.Status, row.Joined, row.ID = Valid, j, EventID(sum, line)
		}
		f.Rows = append(f.Rows, row)
	}
	return f, nil
}

// unreadable words a read error: the end of the file where more was due, or
// broken CSV (whose *csv.ParseError names the line and column).
func unreadable(err error, early string) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %s", ErrUnreadable, early)
	}
	return fmt.Errorf("%w: not valid CSV: %v; nothing was imported", ErrUnreadable, err)
}

func blank(record []string) bool {
	for _, c := range record {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

// isExample recognises the template's examples row ("Example: a@b.com,…").
func isExample(record []string) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(record[0])), "example:")
}
