package bulk

import (
	"strings"
	"testing"
)

// portalHeader is the header row of the portal's bulk-invite template.
const portalHeader = "Email address to invite [inviteeEmail] Required,Redirection url [inviteRedirectURL] Required," +
	"Send invitation message (true or false) [sendEmail],Customized invitation message [customizedMessageBody]"

// fullHeader adds guestflow's optional columns.
const fullHeader = portalHeader + ",First name [givenName],Last name [surname],Usage location [usageLocation]," +
	"Instance [instance],Roles [roles],License [license]"

// csvFile joins lines into a file with the version line first.
func csvFile(lines ...string) []byte {
	return []byte("version:v1.0\n" + strings.Join(lines, "\n") + "\n")
}

// parseOK parses data and fails the test if the file is unreadable.
func parseOK(t *testing.T, data []byte, o Options) File {
	t.Helper()
	f, err := Parse(data, o)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, data)
	}
	return f
}

// only returns the single row of f.
func only(t *testing.T, f File) Row {
	t.Helper()
	if len(f.Rows) != 1 {
		t.Fatalf("want 1 row, got %d: %+v", len(f.Rows), f.Rows)
	}
	return f.Rows[0]
}
