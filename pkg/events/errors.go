package events

import (
	"errors"
	"fmt"
)

// ErrInvalid marks a message that no retry can fix: the runtime dead-letters
// it with reason invalid_event on its first delivery. Every Decode error and
// every ParseJoined problem wraps it, so one errors.Is check classifies both.
var ErrInvalid = errors.New("invalid event")

// FieldError is one problem with one field of the joined data. It is a type
// rather than a string so a caller (the CSV importer, a form) can point at the
// offending field; its text is written for the person who has to fix it.
type FieldError struct {
	Field   string // the JSON name, e.g. "usageLocation"
	Problem string // what is wrong and how to fix it
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Unwrap makes every FieldError an ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// invalidf builds a Decode error. The sentence ends up in the dead letter's
// Guestflow-Error header, so it must say what to fix.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}
