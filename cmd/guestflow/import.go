package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/guestflow/guestflow/internal/app"
	"github.com/guestflow/guestflow/internal/bulk"
	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/provision"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// importSource is the CloudEvents source of imported joined events.
const importSource = "guestflow/import"

// ackTimeout bounds the wait for one PubAck, so a broker that goes away in
// the middle of an import ends it with rejected rows rather than a hang.
const ackTimeout = 30 * time.Second

type importFlags struct {
	defaults   bulk.Defaults
	roles      string
	results    string
	dryRun     bool
	natsURL    natsFlag
	maxPending int
}

func newImport(g *globals) *cobra.Command {
	var f importFlags
	cmd := &cobra.Command{
		Use:   "import <file.csv>",
		Short: "Bulk invite: publish one joined event per row of the portal's bulk-invite CSV",
		Long: `Read the Azure portal's bulk-invite template (Users > Bulk operations > Bulk invite >
Download) and publish one io.guestflow.user.joined.v1 event per row, as if an HR system
had sent them. guestflow never asks Microsoft to send its own invitation mail: the notify
step's mail carries the redemption link.

The file keeps the template's first two lines: "version:v1.0" and the header. Columns
are matched by the name in square brackets, in any order and any case:

  [inviteeEmail]           the guest's address (required)
  [inviteRedirectURL]      where the redeemed invitation lands; empty = the instance URL
  [sendEmail]              send guestflow's onboarding mail: true/false/yes/no/1/0; empty = true
  [customizedMessageBody]  a personal message for that mail
  [givenName] [surname]    required: names have no default
  [usageLocation]          ISO 3166-1 alpha-2 country (GB, not UK); default --usage-location
  [instance]               a configured instance; default --instance
  [roles]                  security roles separated by ";"; default --roles, else the instance's
  [license]                SKU part number; default --license, else the instance's

The template's examples row (first cell "Example: …") and rows of empty cells are
skipped. Every row is checked against the contract before anything is sent. When the
configuration names instances (--config, a guestflow.yaml here, or GUESTFLOW_INSTANCES_…
variables), a row for any other instance is rejected too; without them, the invite step
dead-letters it as unknown_instance. A bad row is reported on
stderr as FILE:LINE (the line the row starts on, counting the version line) and
skipped; a row with the same address as an earlier row is a duplicate and skipped.

Each event's id is derived from the file's content and the row's line, and is sent as
Nats-Msg-Id, so importing the same file again within the stream's duplicate window
(2 minutes) publishes nothing twice: the broker reports those rows as duplicates, and
they are reported "already_published", with the onboarding id of the first import.
The id is the onboarding id 'guestflow status' takes.

The result file (FILE.results.csv, or --results) has one row per data row:
line,email,status,onboardingid,error with status published, already_published,
duplicate (the same address as an earlier row) or rejected. Cells that a spreadsheet
would take for a formula (starting with =, +, -, @, tab or CR) are written with a
leading single quote.
An unreadable file (no version line, no [inviteeEmail] column, broken CSV quoting)
publishes nothing and writes no result file.

--dry-run checks the file and writes the result file exactly as a real import would,
but sends nothing and needs no NATS: "published" there means "would be published".

Exit status: 0 when no row was rejected; 3 when some rows were rejected and at least
one was published or already published; 1 when nothing was published (every row
rejected, an unreadable file, no NATS or no stream). Rows already published count as
published: their onboardings are in the stream.`,
		Example: `  guestflow import guests.csv --instance sales --usage-location PT

  guests.csv, as exported from the portal with guestflow's columns added:

    version:v1.0,,,,,,,,,
    Email address to invite [inviteeEmail] Required,Redirection url [inviteRedirectURL] Required,Send invitation message (true or false) [sendEmail],Customized invitation message [customizedMessageBody],First name [givenName],Last name [surname],Usage location [usageLocation],Instance [instance],Roles [roles],License [license]
    ana.silva@fabrikam.com,,true,Welcome to the EU sales pipeline.,Ana,Silva,PT,sales,,
    liam.o'brien@contoso.example,,false,,Liam,O'Brien,IE,service,Customer Service Representative;Sales Manager,
    kenji.sato@adatum.example,https://contoso.crm4.dynamics.com/main.aspx,,"Welcome, Kenji!",Kenji,Sato,JP,legacy,,

  guestflow import guests.csv --dry-run                 # check it, write guests.csv.results.csv, send nothing
  guestflow import guests.csv --results /tmp/out.csv --nats nats://nats.internal:4222`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.maxPending < 1 {
				return fmt.Errorf("--max-pending must be at least 1, not %d", f.maxPending)
			}
			f.defaults.Roles = splitRoles(f.roles)
			return runImport(cmd.Context(), g.output(cmd), g, cmd.Flags().Changed("config"), args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.defaults.Instance, "instance", "", "instance for rows without an [instance] value")
	fl.StringVar(&f.defaults.UsageLocation, "usage-location", "", "ISO 3166-1 alpha-2 country for rows without a [usageLocation] value, e.g. PT")
	fl.StringVar(&f.defaults.License, "license", "", "SKU part number for rows without a [license] value (default: the instance's)")
	fl.StringVar(&f.roles, "roles", "", "security roles, separated by commas or semicolons, for rows without [roles] (default: the instance's)")
	fl.StringVar(&f.results, "results", "", "where to write the per-row results (default FILE.results.csv)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "check the file and write the results as an import would, but publish nothing")
	f.natsURL.register(fl)
	fl.IntVar(&f.maxPending, "max-pending", 256, "how many events may await their PubAck at once")
	return cmd
}

// splitRoles reads --roles. Commas are accepted besides the CSV column's
// semicolons because `publish --roles` takes commas.
func splitRoles(s string) []string {
	var roles []string
	for _, r := range strings.FieldsFunc(s, func(c rune) bool { return c == ',' || c == ';' }) {
		if r = strings.TrimSpace(r); r != "" {
			roles = append(roles, r)
		}
	}
	return roles
}

// runImport is the whole import: parse, report, publish, write the results,
// and turn the counts into the contract's exit status.
func runImport(ctx context.Context, stderr io.Writer, g *globals, ownConfig bool, path string, f importFlags) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return &exitError{1, err}
	}
	cfg, err := config.LoadUnvalidated(g.configPath, ownConfig, os.Environ())
	if err != nil {
		return &exitError{1, err}
	}
	file, err := bulk.Parse(data, bulk.Options{Defaults: f.defaults, Instances: cfg.InstanceNames()})
	if err != nil {
		return &exitError{1, fmt.Errorf("%s: %w", path, err)}
	}
	resultsPath := f.results
	if resultsPath == "" {
		resultsPath = path + ".results.csv"
	}
	// Opened before anything is sent: results that cannot be written are a
	// reason not to start, not a surprise after publishing.
	out, err := createResults(resultsPath, path)
	if err != nil {
		return &exitError{1, err}
	}
	defer out.Close()

	for _, n := range file.Notes {
		fmt.Fprintf(stderr, "%s: note: %s\n", path, n)
	}
	if len(file.Rows) == 0 {
		fmt.Fprintf(stderr, "%s: note: the file has no data rows\n", path)
	}
	batch := outgoing(file.Rows, time.Now())
	for i := range file.Rows {
		report(stderr, path, &file.Rows[i])
	}

	var sendErr error
	switch {
	case len(batch) == 0:
	case f.dryRun:
		for _, p := range batch {
			p.row.Status = bulk.Published
		}
	default:
		f.natsURL.apply(&cfg.NATS)
		step, done := newProgress(stderr, len(batch))
		sendErr = publishBatch(ctx, cfg.NATS, batch, f.maxPending, step)
		done()
		for _, p := range batch {
			if sendErr != nil {
				p.row.Status, p.row.Err = bulk.Rejected, sendErr
			} else {
				report(stderr, path, p.row)
			}
		}
	}

	if err := bulk.WriteResults(out, file.Rows); err != nil {
		return &exitError{1, fmt.Errorf("write %s: %w", resultsPath, err)}
	}
	if err := out.Close(); err != nil {
		return &exitError{1, fmt.Errorf("write %s: %w", resultsPath, err)}
	}
	return summarize(stderr, file.Rows, resultsPath, f.dryRun, sendErr)
}

// createResults opens the result file, refusing to overwrite the input.
func createResults(resultsPath, inputPath string) (*os.File, error) {
	in, err := os.Stat(inputPath)
	if err != nil {
		return nil, err
	}
	if res, err := os.Stat(resultsPath); err == nil && os.SameFile(in, res) {
		return nil, fmt.Errorf("--results %s is the input file", resultsPath)
	}
	out, err := os.Create(resultsPath)
	if err != nil {
		return nil, fmt.Errorf("result file: %w", err)
	}
	return out, nil
}

// report writes a bad row as one line, FILE:LINE first so that editors and
// grep can jump to it.
func report(w io.Writer, path string, r *bulk.Row) {
	if r.Status == bulk.Rejected || r.Status == bulk.Duplicate {
		fmt.Fprintf(w, "%s:%d: %s: %v\n", path, r.Line, r.Status, r.Err)
	}
}

// pending is one valid row and the message that carries its joined event.
type pending struct {
	row *bulk.Row
	msg *nats.Msg
}

// outgoing builds the message of every valid row. A row whose event would
// exceed the contract's 64 KiB (long role names can do it) is rejected here
// rather than dead-lettered by the invite step.
func outgoing(rows []bulk.Row, now time.Time) []pending {
	var batch []pending
	for i := range rows {
		r := &rows[i]
		if r.Status != bulk.Valid {
			continue
		}
		msg, err := joinedMessage(r, now)
		if err != nil {
			r.Status, r.Err = bulk.Rejected, err
			continue
		}
		batch = append(batch, pending{row: r, msg: msg})
	}
	return batch
}

// joinedMessage renders a row's joined event in structured mode, with the
// event id as Nats-Msg-Id so that the stream stores it once.
func joinedMessage(r *bulk.Row, now time.Time) (*nats.Msg, error) {
	ev, err := events.NewJoined(r.ID, importSource, r.Joined, now)
	if err != nil {
		return nil, err
	}
	header, body, err := events.Encode(ev)
	if err != nil {
		return nil, err
	}
	m := &nats.Msg{Subject: events.SubjectJoined, Header: nats.Header(header), Data: body}
	m.Header.Set(jetstream.MsgIDHeader, r.ID)
	size := len(body)
	for k, vs := range m.Header {
		for _, v := range vs {
			size += len(k) + len(v)
		}
	}
	if size > events.MaxJoinedSize {
		return nil, fmt.Errorf("the event would be %d bytes, over the %d a joined event may have; shorten the roles or the message",
			size, events.MaxJoinedSize)
	}
	return m, nil
}

// publishBatch sends every pending event with at most maxPending awaiting
// their PubAck. It returns an error only when nothing can be sent at all (no
// NATS, no stream); a single failed publish rejects its row.
func publishBatch(ctx context.Context, c config.NATS, batch []pending, maxPending int, progress func()) error {
	nc, _, err := app.Connect(c, "guestflow-import")
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(ackTimeout))
	if err != nil {
		return err
	}
	if _, err := js.StreamNameBySubject(ctx, events.SubjectJoined); err != nil {
		if denied := provision.Denied(nc, err); denied != err {
			return fmt.Errorf("looking up the stream of %s: %w", events.SubjectJoined, denied)
		}
		return fmt.Errorf("no stream stores %s (%v); is a worker or 'guestflow dev' running? it creates the stream", events.SubjectJoined, err)
	}
	slots := make(chan struct{}, maxPending)
	var wg sync.WaitGroup
	for _, p := range batch {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			p.row.Status, p.row.Err = bulk.Rejected, fmt.Errorf("not sent: %w", ctx.Err())
			progress()
			continue
		}
		ack, err := js.PublishMsgAsync(p.msg)
		if err != nil {
			p.row.Status, p.row.Err = bulk.Rejected, fmt.Errorf("publish: %w", err)
			<-slots
			progress()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots; progress() }()
			select {
			case a := <-ack.Ok():
				p.row.Status = bulk.Published
				if a.Duplicate {
					// The same file imported before, within the
					// duplicate window: the broker kept the first.
					p.row.Status, p.row.Err = bulk.AlreadyPublished, fmt.Errorf(
						"an event with this id was published within the duplicate window (%s), by an earlier import of this file; stored once",
						worker.DuplicateWindow)
				}
			case err := <-ack.Err():
				p.row.Status, p.row.Err = bulk.Rejected, fmt.Errorf("publish: %w", err)
			case <-ctx.Done():
				p.row.Status, p.row.Err = bulk.Rejected, errors.New(
					"interrupted before the PubAck; import the same file again within two minutes to finish without duplicates")
			}
		}()
	}
	wg.Wait()
	return nil
}

// newProgress draws a progress bar on w while publishing, but only on a
// terminal: in a log or a pipe, redrawn bars are noise and the summary line
// says it all. step counts one row; done clears the bar.
func newProgress(w io.Writer, n int) (step, done func()) {
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			bar := progressbar.NewOptions(n, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("publishing"),
				progressbar.OptionShowCount(), progressbar.OptionSetWidth(30), progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish())
			return func() { _ = bar.Add(1) }, func() { _ = bar.Finish() }
		}
	}
	return func() {}, func() {}
}

// summarize prints the counts and returns the contract's exit status.
// sendErr, when set, is why nothing could be sent at all.
func summarize(w io.Writer, rows []bulk.Row, resultsPath string, dryRun bool, sendErr error) error {
	count := map[bulk.Status]int{}
	for _, r := range rows {
		count[r.Status]++
	}
	published, already, duplicate, rejected := count[bulk.Published], count[bulk.AlreadyPublished], count[bulk.Duplicate], count[bulk.Rejected]
	if dryRun {
		fmt.Fprintf(w, "dry run: nothing published; %d would be published, %d duplicate, %d rejected; results in %s\n",
			published, duplicate, rejected, resultsPath)
	} else {
		// Named only when there are some, so that the line of a first
		// import reads as it always has.
		alreadyNote := ""
		if already > 0 {
			alreadyNote = fmt.Sprintf("%d already published, ", already)
		}
		fmt.Fprintf(w, "%d published, %s%d duplicate, %d rejected; results in %s\n", published, alreadyNote, duplicate, rejected, resultsPath)
	}
	switch {
	case rejected == 0:
		return nil
	case published+already > 0:
		return &exitError{3, fmt.Errorf("%d of %d rows rejected; see %s", rejected, len(rows), resultsPath)}
	case sendErr != nil:
		return &exitError{1, fmt.Errorf("nothing was published: %w", sendErr)}
	}
	return &exitError{1, fmt.Errorf("nothing was published: every row was rejected; see %s", resultsPath)}
}
