package bulk

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/guestflow/guestflow/pkg/events"
)

func TestParseReadsPortalHeaderVariants(t *testing.T) {
	ana := events.Joined{Email: "ana.silva@fabrikam.com", GivenName: "Ana", Surname: "Silva", DisplayName: "Ana Silva",
		UsageLocation: "PT", Instance: "sales"}
	tests := []struct {
		name string
		data string
	}{
		{"portal template with guestflow columns", "version:v1.0\n" + fullHeader + "\nana.silva@fabrikam.com,,,,Ana,Silva,PT,sales,,\n"},
		{"version line padded with commas", "version:v1.0,,,\n" + fullHeader + "\nana.silva@fabrikam.com,,,,Ana,Silva,PT,sales\n"},
		{"UTF-8 byte order mark", "\ufeffversion:v1.0\n" + fullHeader + "\nana.silva@fabrikam.com,,,,Ana,Silva,PT,sales\n"},
		{"CRLF line ends", "version:v1.0\r\n" + fullHeader + "\r\nana.silva@fabrikam.com,,,,Ana,Silva,PT,sales\r\n"},
		{"version line in another case", "Version:V1.0\n" + fullHeader + "\nana.silva@fabrikam.com,,,,Ana,Silva,PT,sales\n"},
		{"columns in another order, bare bracketed names",
			"version:v1.0\n[instance],[surname],[givenName],[inviteeEmail],[usageLocation]\nsales,Silva,Ana,ana.silva@fabrikam.com,PT\n"},
		{"bracketed names in any case", "version:v1.0\n[INVITEEEMAIL],[GivenName],[SURNAME],[usagelocation],[Instance]\nana.silva@fabrikam.com,Ana,Silva,PT,sales\n"},
		{"localised portal titles",
			"version:v1.0\n招待するメール アドレス [inviteeEmail] 必須,リダイレクト URL [inviteRedirectURL] 必須,名 [givenName],姓 [surname],[usageLocation],[instance]\n" +
				"ana.silva@fabrikam.com,,Ana,Silva,PT,sales\n"},
		{"spaces after commas and around values",
			"version:v1.0\n[inviteeEmail], [givenName], [surname], [usageLocation], [instance]\n  ana.silva@fabrikam.com ,  Ana , Silva ,  pt , sales\n"},
		{"short row: missing trailing cells are empty", "version:v1.0\n[inviteeEmail],[givenName],[surname],[usageLocation],[instance],[roles],[license]\nana.silva@fabrikam.com,Ana,Silva,PT,sales\n"},
		{"padding cells past the header are ignored", "version:v1.0\n[inviteeEmail],[givenName],[surname],[usageLocation],[instance]\nana.silva@fabrikam.com,Ana,Silva,PT,sales,,,\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			row := only(t, parseOK(t, []byte(tt.data), Options{}))
			if row.Status != Valid || row.Err != nil {
				t.Fatalf("row %+v", row)
			}
			if !reflect.DeepEqual(row.Joined, ana) {
				t.Errorf("joined %+v\nwant   %+v", row.Joined, ana)
			}
			if row.Line != 3 {
				t.Errorf("line %d, want 3", row.Line)
			}
		})
	}
}

func TestParseMapsPortalColumns(t *testing.T) {
	data := csvFile(fullHeader,
		`ana.silva@fabrikam.com,https://contoso.example/start,false,"Welcome, Ana!",Ana,Silva,PT,sales,Salesperson; Sales Manager ;,DYN365_ENTERPRISE_SALES`)
	row := only(t, parseOK(t, data, Options{}))
	no := false
	want := events.Joined{Email: "ana.silva@fabrikam.com", GivenName: "Ana", Surname: "Silva", DisplayName: "Ana Silva",
		UsageLocation: "PT", Instance: "sales", Roles: []string{"Salesperson", "Sales Manager"}, License: "DYN365_ENTERPRISE_SALES",
		Message: "Welcome, Ana!", SendEmail: &no, RedirectURL: "https://contoso.example/start"}
	if !reflect.DeepEqual(row.Joined, want) {
		t.Errorf("joined %+v\nwant   %+v", row.Joined, want)
	}
	if row.Joined.RedirectURL == "" || row.Joined.SendsEmail() {
		t.Errorf("redirect %q sends %v", row.Joined.RedirectURL, row.Joined.SendsEmail())
	}
}

func TestParseEmptyRedirectMeansTheInstanceURL(t *testing.T) {
	row := only(t, parseOK(t, csvFile(fullHeader, "ana@fabrikam.com, ,,,Ana,Silva,PT,sales"), Options{}))
	// Absent: the invite step fills in the instance URL.
	if row.Status != Valid || row.Joined.RedirectURL != "" {
		t.Errorf("row %+v", row)
	}
}

func TestParseSendEmailValues(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		cell string
		want *bool // nil: absent (the contract's default, true)
	}{
		{"", nil}, {"true", &yes}, {"TRUE", &yes}, {"True", &yes}, {"yes", &yes}, {"YES", &yes}, {"1", &yes},
		{"false", &no}, {"FALSE", &no}, {"No", &no}, {"0", &no}, {" false ", &no},
	}
	for _, tt := range tests {
		t.Run(tt.cell, func(t *testing.T) {
			row := only(t, parseOK(t, csvFile(fullHeader, "ana@fabrikam.com,,"+tt.cell+",,Ana,Silva,PT,sales"), Options{}))
			if row.Status != Valid {
				t.Fatalf("row %+v", row)
			}
			if !reflect.DeepEqual(row.Joined.SendEmail, tt.want) {
				t.Errorf("sendEmail %v, want %v", row.Joined.SendEmail, tt.want)
			}
		})
	}
	for _, bad := range []string{"maybe", "y", "n", "2", "on", "truee", "-1"} {
		t.Run("reject "+bad, func(t *testing.T) {
			row := only(t, parseOK(t, csvFile(fullHeader, "ana@fabrikam.com,,"+bad+",,Ana,Silva,PT,sales"), Options{}))
			if row.Status != Rejected || !hasField(row.Err, "sendEmail") || !strings.Contains(row.Err.Error(), bad) {
				t.Errorf("row %+v", row)
			}
		})
	}
}

// TestParseNumbersPhysicalLines checks that a row is numbered by the line it
// starts on in the file: the version line is 1, a quoted message spanning
// lines moves every later row down, blank and skipped lines still count.
func TestParseNumbersPhysicalLines(t *testing.T) {
	data := []byte("version:v1.0,,,\r\n" + // 1
		fullHeader + "\r\n" + // 2
		"Example: lstokes@fabrikam.com,https://myapplications.microsoft.com,TRUE,Welcome to the Contoso organization!\r\n" + // 3
		"ana@fabrikam.com,,,\"Dear Ana,\r\n\r\nwelcome\r\non board.\",Ana,Silva,PT,sales\r\n" + // 4–7
		"\r\n" + // 8
		",,,,,,,,,\r\n" + // 9
		"liam@contoso.example,,,,Liam,,IE,service\r\n" + // 10
		"\"kenji@adatum.example\",,,\"two\nlines\",Kenji,Sato,JP,legacy\n" + // 11–12
		"ANA@fabrikam.com,,,,Ana,Silva,PT,sales\n") // 13
	f := parseOK(t, data, Options{})
	got := map[int]Status{}
	for _, r := range f.Rows {
		got[r.Line] = r.Status
	}
	want := map[int]Status{4: Valid, 10: Rejected, 11: Valid, 13: Duplicate}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("lines %v, want %v", got, want)
	}
	if f.Rows[0].Joined.Message != "Dear Ana,\n\nwelcome\non board." {
		t.Errorf("multi-line message %q", f.Rows[0].Joined.Message)
	}
	if len(f.Notes) != 1 || !strings.Contains(f.Notes[0], "line 3") || !strings.Contains(f.Notes[0], "example") {
		t.Errorf("notes %q, want the examples row of line 3", f.Notes)
	}
}

func TestParseDuplicates(t *testing.T) {
	data := csvFile(fullHeader,
		"ana@fabrikam.com,,,,Ana,Silva,PT,sales",        // 3
		" Ana@Fabrikam.COM ,,,,Ana,Silva,PT,service",    // 4: same address
		"liam@contoso.example,,,,Liam,O'Brien,UK,sales", // 5: rejected
		"liam@contoso.example,,,,Liam,O'Brien,IE,sales", // 6: duplicate of a rejected row
		",,,,No,Email,PT,sales",                         // 7: no address
		",,,,No,Email,PT,sales",                         // 8: no address is not a duplicate
	)
	f := parseOK(t, data, Options{})
	want := []struct {
		line   int
		status Status
		err    string
	}{
		{3, Valid, ""}, {4, Duplicate, "line 3"}, {5, Rejected, "usageLocation"}, {6, Duplicate, "line 5"},
		{7, Rejected, "[inviteeEmail]"}, {8, Rejected, "[inviteeEmail]"},
	}
	if len(f.Rows) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(f.Rows), len(want), f.Rows)
	}
	for i, w := range want {
		r := f.Rows[i]
		if r.Line != w.line || r.Status != w.status || (w.err != "") != (r.Err != nil) || (r.Err != nil && !strings.Contains(r.Err.Error(), w.err)) {
			t.Errorf("row %d: line %d %s %v; want line %d %s %q", i, r.Line, r.Status, r.Err, w.line, w.status, w.err)
		}
		if (r.ID != "") != (r.Status == Valid) {
			t.Errorf("line %d: id %q with status %s", r.Line, r.ID, r.Status)
		}
	}
	if f.Rows[1].Email != "Ana@Fabrikam.COM" {
		t.Errorf("email as written: %q", f.Rows[1].Email)
	}
}

func TestParseDefaultsFromFlags(t *testing.T) {
	d := Defaults{Instance: "sales", UsageLocation: "pt", License: "DYN365_ENTERPRISE_SALES", Roles: []string{"Salesperson", "Sales Manager"}}
	t.Run("missing columns", func(t *testing.T) {
		row := only(t, parseOK(t, csvFile(portalHeader+",[givenName],[surname]", "ana@fabrikam.com,,,,Ana,Silva"), Options{Defaults: d}))
		want := events.Joined{Email: "ana@fabrikam.com", GivenName: "Ana", Surname: "Silva", DisplayName: "Ana Silva",
			UsageLocation: "PT", Instance: "sales", Roles: d.Roles, License: d.License}
		if !reflect.DeepEqual(row.Joined, want) {
			t.Errorf("joined %+v\nwant   %+v", row.Joined, want)
		}
	})
	t.Run("empty cells", func(t *testing.T) {
		row := only(t, parseOK(t, csvFile(fullHeader, "ana@fabrikam.com,,,,Ana,Silva, , ,,"), Options{Defaults: d}))
		if row.Joined.Instance != "sales" || row.Joined.UsageLocation != "PT" || row.Joined.License != d.License || len(row.Joined.Roles) != 2 {
			t.Errorf("joined %+v", row.Joined)
		}
	})
	t.Run("cells win over flags", func(t *testing.T) {
		row := only(t, parseOK(t, csvFile(fullHeader, "ana@fabrikam.com,,,,Ana,Silva,IE,service,Basic User,DYN365_ENTERPRISE_PLAN1"), Options{Defaults: d}))
		want := events.Joined{Email: "ana@fabrikam.com", GivenName: "Ana", Surname: "Silva", DisplayName: "Ana Silva",
			UsageLocation: "IE", Instance: "service", Roles: []string{"Basic User"}, License: "DYN365_ENTERPRISE_PLAN1"}
		if !reflect.DeepEqual(row.Joined, want) {
			t.Errorf("joined %+v\nwant   %+v", row.Joined, want)
		}
	})
	t.Run("a bad default is blamed on its flag", func(t *testing.T) {
		row := only(t, parseOK(t, csvFile(fullHeader, "ana@fabrikam.com,,,,Ana,Silva,,,,"),
			Options{Defaults: Defaults{Instance: "crm", UsageLocation: "UK"}, Instances: []string{"sales"}}))
		for _, want := range []string{"usageLocation:", "(the value comes from --usage-location)", "instance:", "(the value comes from --instance)"} {
			if !strings.Contains(row.Err.Error(), want) {
				t.Errorf("error %q lacks %q", row.Err, want)
			}
		}
	})
	t.Run("names have no default", func(t *testing.T) {
		row := only(t, parseOK(t, csvFile(portalHeader, "ana@fabrikam.com,,,"), Options{Defaults: d}))
		for _, want := range []string{"givenName: the file has no [givenName] column; add one", "surname: the file has no [surname] column; add one"} {
			if row.Status != Rejected || !strings.Contains(row.Err.Error(), want) {
				t.Errorf("error %q lacks %q", row.Err, want)
			}
		}
	})
}

// TestParseRejects lists every reason a row is rejected; the error names
// the field (or, for the row's shape, the row) and what to do.
func TestParseRejects(t *testing.T) {
	configured := Options{Instances: []string{"legacy", "sales", "service"}}
	long := strings.Repeat("x", 65)
	tests := []struct {
		name  string
		row   string // fullHeader cells
		o     Options
		field string // the FieldError's field; "" for a problem of the row
		want  string // in the error text
	}{
		{"empty email cell", ",,,,Ana,Silva,PT,sales", Options{}, "email", "[inviteeEmail] cell is empty"},
		{"bad email", "ana.silva(at)fabrikam.com,,,,Ana,Silva,PT,sales", Options{}, "email", ""},
		{"display-name email", `"Ana <ana@fabrikam.com>",,,,Ana,Silva,PT,sales`, Options{}, "email", ""},
		{"single-label domain", "ana@localhost,,,,Ana,Silva,PT,sales", Options{}, "email", ""},
		{"empty givenName cell", "ana@fabrikam.com,,,,,Silva,PT,sales", Options{}, "givenName", "[givenName] cell is empty"},
		{"empty surname cell", "ana@fabrikam.com,,,,Ana,,PT,sales", Options{}, "surname", "[surname] cell is empty"},
		{"name too long", "ana@fabrikam.com,,,,Ana," + long + ",PT,sales", Options{}, "surname", "64"},
		{"control character in a name", "ana@fabrikam.com,,,,\"An\ba\",Silva,PT,sales", Options{}, "givenName", "control character"},
		{"UK is not ISO 3166", "ana@fabrikam.com,,,,Ana,Silva,UK,sales", Options{}, "usageLocation", "GB"},
		{"EU is not a country", "ana@fabrikam.com,,,,Ana,Silva,EU,sales", Options{}, "usageLocation", ""},
		{"no usage location", "ana@fabrikam.com,,,,Ana,Silva,,sales", Options{}, "usageLocation", "--usage-location"},
		{"no instance", "ana@fabrikam.com,,,,Ana,Silva,PT,", Options{}, "instance", "--instance"},
		{"unknown instance", "ana@fabrikam.com,,,,Ana,Silva,PT,crm", configured, "instance", "configured: legacy, sales, service"},
		{"instance names are exact", "ana@fabrikam.com,,,,Ana,Silva,PT,Sales", configured, "instance", `"Sales"`},
		{"too many roles", "ana@fabrikam.com,,,,Ana,Silva,PT,sales," + strings.Repeat("r;", 21), Options{}, "roles", "20"},
		{"message too long", "ana@fabrikam.com,,," + strings.Repeat("m", 2001) + ",Ana,Silva,PT,sales", Options{}, "message", "2000"},
		{"plain-http redirect", "ana@fabrikam.com,http://contoso.example,,,Ana,Silva,PT,sales", Options{}, "redirectUrl", "https"},
		{"relative redirect", "ana@fabrikam.com,/start,,,Ana,Silva,PT,sales", Options{}, "redirectUrl", "https"},
		{"bad sendEmail", "ana@fabrikam.com,,maybe,,Ana,Silva,PT,sales", Options{}, "sendEmail", `"maybe"`},
		{"a name not UTF-8 (a legacy code page)", "ana@fabrikam.com,,,,Jos\xe9,Silva,PT,sales", Options{}, "givenName", `the [givenName] cell is not UTF-8 text (byte 0xe9); save the file as "CSV UTF-8"`},
		{"a message not UTF-8", "ana@fabrikam.com,,,Ol\xe1!,Ana,Silva,PT,sales", Options{}, "message", "[customizedMessageBody] cell is not UTF-8"},
		{"cells past the header", "ana@fabrikam.com,,,,Ana,Silva,PT,sales,,,O'Brien", Options{}, "", "quote values that contain commas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			row := only(t, parseOK(t, csvFile(fullHeader, tt.row), tt.o))
			if row.Status != Rejected || row.Err == nil || row.ID != "" {
				t.Fatalf("row %+v, want rejected", row)
			}
			if tt.field != "" && !hasField(row.Err, tt.field) {
				t.Errorf("error %q does not name %s", row.Err, tt.field)
			}
			if tt.field != "" && !strings.HasPrefix(row.Err.Error(), tt.field+":") {
				t.Errorf("error %q does not start with %s:", row.Err, tt.field)
			}
			if !strings.Contains(row.Err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", row.Err, tt.want)
			}
		})
	}
}

func TestParseUnknownInstanceWithoutConfigurationIsLeftToTheInviteStep(t *testing.T) {
	row := only(t, parseOK(t, csvFile(fullHeader, "ana@fabrikam.com,,,,Ana,Silva,PT,crm"), Options{}))
	if row.Status != Valid || row.Joined.Instance != "crm" {
		t.Errorf("row %+v", row)
	}
}

func TestParseReportsEveryProblemInFieldOrder(t *testing.T) {
	row := only(t, parseOK(t, csvFile(fullHeader, "not-an-address,http://x.example,perhaps,,,Silva,UK,crm"),
		Options{Instances: []string{"sales"}}))
	var fields []string
	for _, e := range row.Err.(Problems) {
		var fe *events.FieldError
		if errors.As(e, &fe) {
			fields = append(fields, fe.Field)
		}
	}
	want := []string{"email", "givenName", "usageLocation", "instance", "sendEmail", "redirectUrl"}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("fields %v, want %v (%v)", fields, want, row.Err)
	}
	if strings.Contains(row.Err.Error(), "\n") {
		t.Errorf("error spans lines: %q", row.Err)
	}
}

func TestParseUnreadableFiles(t *testing.T) {
	tests := []struct {
		name string
		data string
		want string
	}{
		{"empty", "", "empty"},
		{"only a BOM", "\ufeff", "empty"},
		{"version line only", "version:v1.0\n", "no header row"},
		{"no version line", fullHeader + "\nana@fabrikam.com,,,,Ana,Silva,PT,sales\n", `line 1 is the header, but the template's first line "version:v1.0" is missing`},
		{"other template version", "version:v2.0\n" + fullHeader + "\n", `"version:v2.0" is not supported`},
		{"not the template", "email,name\nana@fabrikam.com,Ana\n", `line 1 must be the template's "version:v1.0" line`},
		{"no [inviteeEmail] column", "version:v1.0\nEmail address,[givenName],[surname]\na@b.com,A,B\n", "line 2: the header has no [inviteeEmail] column"},
		{"semicolon-separated", "version:v1.0\n[inviteeEmail];[givenName];[surname]\na@b.com;A;B\n", "comma-separated"},
		{"a column twice", "version:v1.0\n[inviteeEmail],[givenName],[GIVENNAME]\n", "columns 2 and 3 are both"},
		{"broken quoting", csvText(fullHeader, "ana@fabrikam.com,,,,Ana,Silva,PT,sales", `liam@contoso.example,,,"unterminated "x" here,Liam,O'Brien,IE,sales`), "line 4"},
		{"stray quote in a bare cell", csvText(fullHeader, `ana@fabrikam.com,,,5" screen,Ana,Silva,PT,sales`), "line 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte(tt.data), Options{})
			if !errors.Is(err, ErrUnreadable) {
				t.Fatalf("Parse = %+v, %v; want ErrUnreadable", f, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
			if len(f.Rows) != 0 {
				t.Errorf("rows from an unreadable file: %+v", f.Rows)
			}
		})
	}
}

func TestParseNotesIgnoredColumns(t *testing.T) {
	f := parseOK(t, csvFile(fullHeader+",Department [department],Cost centre,", "ana@fabrikam.com,,,,Ana,Silva,PT,sales,,,Sales,42,"), Options{})
	if only(t, f).Status != Valid {
		t.Fatalf("row %+v", f.Rows[0])
	}
	if len(f.Notes) != 2 || !strings.Contains(f.Notes[0], "[department]") || !strings.Contains(f.Notes[1], "Cost centre") {
		t.Errorf("notes %q", f.Notes)
	}
}

func csvText(lines ...string) string { return string(csvFile(lines...)) }

func hasField(err error, field string) bool {
	for _, e := range unjoin(err) {
		var fe *events.FieldError
		if errors.As(e, &fe) && fe.Field == field {
			return true
		}
	}
	return false
}
