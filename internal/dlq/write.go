package dlq

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/guestflow/guestflow/internal/textsafe"
	"github.com/guestflow/guestflow/internal/worker"
)

// errorWidth is how much of Guestflow-Error the table shows; `show` has it
// all.
const errorWidth = 60

// WriteTable writes one line per dead letter for people. Every value that
// came with the dead letter goes through textsafe.Escape: anyone who can
// publish can put terminal escapes in a header or the body.
func WriteTable(w io.Writer, ls []Letter) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tFAILED AT\tSTEP\tREASON\tONBOARDING\tATTEMPTS\tHTTP\tERROR")
	for _, l := range ls {
		status := ""
		if l.HTTPStatus != 0 {
			status = strconv.Itoa(l.HTTPStatus)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", l.Seq, l.FailedAt.UTC().Format(time.RFC3339), textsafe.Escape(l.Step),
			dash(l.Reason), dash(l.OnboardingID), l.Attempts, dash(status), Truncate(textsafe.Escape(oneLine(l.Error)), errorWidth))
	}
	return tw.Flush()
}

// jsonLetter is a dead letter in `dlq list --json`: the contract's headers
// as fields for jq, and every header and the body as they are stored.
type jsonLetter struct {
	Seq             uint64              `json:"seq"`
	Subject         string              `json:"subject"`
	StoredAt        time.Time           `json:"storedAt"`
	Step            string              `json:"step"`
	Reason          string              `json:"reason"`
	Error           string              `json:"error"`
	Attempts        int                 `json:"attempts"`
	FailedAt        time.Time           `json:"failedAt"`
	OnboardingID    string              `json:"onboardingId,omitempty"`
	OriginalSubject string              `json:"originalSubject"`
	HTTPStatus      int                 `json:"httpStatus,omitempty"`
	RequestID       string              `json:"requestId,omitempty"`
	Headers         map[string][]string `json:"headers"`
	// Body is the body when it is JSON; BodyText otherwise.
	Body     json.RawMessage `json:"body,omitempty"`
	BodyText *string         `json:"bodyText,omitempty"`
}

// WriteJSON writes the dead letters as one indented JSON array ([] when
// there are none). It is for programs, so it carries values exactly:
// encoding/json escapes C0 controls (ESC, CR, …) and U+2028/U+2029, but C1
// controls, DEL and format characters such as U+202E are valid JSON and
// pass through as they are.
func WriteJSON(w io.Writer, ls []Letter) error {
	out := make([]jsonLetter, 0, len(ls))
	for _, l := range ls {
		j := jsonLetter{
			Seq: l.Seq, Subject: l.Subject, StoredAt: l.Stored.UTC(), Step: l.Step, Reason: l.Reason, Error: l.Error,
			Attempts: l.Attempts, FailedAt: l.FailedAt.UTC(), OnboardingID: l.OnboardingID,
			OriginalSubject: l.OriginalSubject, HTTPStatus: l.HTTPStatus, RequestID: l.RequestID,
			Headers: map[string][]string(l.Header),
		}
		switch {
		case len(l.Data) == 0:
		case json.Valid(l.Data):
			j.Body = l.Data
		default:
			s := strings.ToValidUTF8(string(l.Data), "\uFFFD")
			j.BodyText = &s
		}
		out = append(out, j)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// headerOrder puts the contract's headers first, in the contract's order.
var headerOrder = []string{
	worker.HeaderStep, worker.HeaderReason, worker.HeaderError, worker.HeaderAttempts,
	worker.HeaderOriginalSubject, worker.HeaderFailedAt, worker.HeaderHTTPStatus,
	worker.HeaderRequestID, worker.HeaderOnboardingID, worker.HeaderOriginalSequence,
	worker.HeaderBodyTruncated, worker.HeaderOriginalSHA256, worker.HeaderHeadersDropped,
}

// WriteDetails writes every header and the pretty-printed body of each dead
// letter, every name, value and body line through textsafe.Escape.
func WriteDetails(w io.Writer, ls []Letter) error {
	for i, l := range ls {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "dead letter %d on %s, stored %s\n", l.Seq, textsafe.Escape(l.Subject), l.Stored.UTC().Format(time.RFC3339Nano))
		names := make([]string, 0, len(l.Header))
		for k := range l.Header {
			names = append(names, k)
		}
		slices.SortFunc(names, func(a, b string) int {
			ia, ib := slices.Index(headerOrder, a), slices.Index(headerOrder, b)
			switch {
			case ia >= 0 && ib >= 0:
				return ia - ib
			case ia >= 0:
				return -1
			case ib >= 0:
				return 1
			}
			return strings.Compare(a, b)
		})
		tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
		for _, k := range names {
			for _, v := range l.Header[k] {
				fmt.Fprintf(tw, "  %s:\t%s\n", textsafe.Escape(k), textsafe.Escape(v))
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(w, "body (%d bytes):\n", len(l.Data))
		fmt.Fprintln(w, indent(prettyBody(l.Data), "  "))
		if l.OriginalSubject != "" {
			fmt.Fprintf(w, "replay it to %s with: guestflow dlq replay %d\n", textsafe.Escape(l.OriginalSubject), l.Seq)
		}
	}
	return nil
}

func prettyBody(b []byte) string {
	var buf bytes.Buffer
	if json.Indent(&buf, b, "", "  ") == nil {
		return buf.String()
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return fmt.Sprintf("(binary) %q", b)
}

// indent prefixes every line of s, each escaped on its own so that the
// body keeps its lines.
func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + textsafe.Escape(l)
	}
	return strings.Join(lines, "\n")
}

// Truncate shortens s to at most n runes, marking the cut with "…".
func Truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// dash is s escaped for a table, or "-" for nothing.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return textsafe.Escape(s)
}
