package events_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/guestflow/guestflow/pkg/events"
)

func TestParseJoined(t *testing.T) {
	long := func(s string, n int) string { return strings.Repeat(s, n) }
	roles := func(n int) []string {
		r := make([]string, n)
		for i := range r {
			r[i] = fmt.Sprintf("Role %d", i)
		}
		return r
	}
	// A 254-character address: 64 + 1 + 63 + 1 + 63 + 1 + 61.
	email254 := long("a", 64) + "@" + long("b", 63) + "." + long("c", 63) + "." + long("d", 61)

	tests := []struct {
		name string
		set  map[string]any
		del  []string
		raw  string // used instead of set/del when not empty

		wantFields []string // fields with a problem; nil means valid
		wantIn     string   // a phrase the error must contain
		check      func(t *testing.T, j events.Joined)
	}{
		// The whole payload.
		{name: "minimal", check: func(t *testing.T, j events.Joined) {
			want := events.Joined{Email: "ana.silva@fabrikam.com", GivenName: "Ana", Surname: "Silva", DisplayName: "Ana Silva", UsageLocation: "PT", Instance: "sales"}
			if !reflect.DeepEqual(j, want) {
				t.Errorf("got %+v, want %+v", j, want)
			}
		}},
		{name: "contract example", raw: `{"email":"ana.silva@fabrikam.com","givenName":"Ana","surname":"Silva","displayName":"Ana Silva","usageLocation":"PT","instance":"sales","roles":["Salesperson"],"license":"DYN365_ENTERPRISE_SALES","message":"Welcome to the EU sales pipeline."}`,
			check: func(t *testing.T, j events.Joined) {
				if j.License != "DYN365_ENTERPRISE_SALES" || !slices.Equal(j.Roles, []string{"Salesperson"}) || j.Message != "Welcome to the EU sales pipeline." {
					t.Errorf("got %+v", j)
				}
			}},
		{name: "unknown fields ignored", set: map[string]any{"employeeId": 42, "manager": map[string]any{"x": 1}, "Roles": "x"}},
		{name: "not an object: array", raw: `[]`, wantFields: []string{"data"}, wantIn: "an array"},
		{name: "not an object: null", raw: `null`, wantFields: []string{"data"}},
		{name: "not an object: string", raw: `"x"`, wantFields: []string{"data"}},
		{name: "not JSON", raw: `{"email":`, wantFields: []string{"data"}, wantIn: "invalid JSON"},
		{name: "empty", raw: ` `, wantFields: []string{"data"}, wantIn: "nothing"},

		// Text that is not UTF-8 anywhere, which encoding/json would
		// silently turn into U+FFFD, and nesting past MaxDepth.
		{name: "givenName not UTF-8", raw: string(joinedJSON(t, map[string]any{"givenName": "An~FF~a"})), wantFields: []string{"givenName"},
			wantIn: "givenName: is not valid UTF-8 (byte 0xff, 2 bytes into the text)"},
		{name: "instance not UTF-8", raw: string(joinedJSON(t, map[string]any{"instance": "sales~FF~"})), wantFields: []string{"instance"}, wantIn: "not valid UTF-8"},
		{name: "role not UTF-8", raw: string(joinedJSON(t, map[string]any{"roles": []string{"Salesperson", "~FF~Sales"}})), wantFields: []string{"roles[1]"}, wantIn: "not valid UTF-8"},
		{name: "message not UTF-8", raw: string(joinedJSON(t, map[string]any{"message": "hi~FF~"})), wantFields: []string{"message"}, wantIn: "not valid UTF-8"},
		{name: "unknown field not UTF-8", raw: string(joinedJSON(t, map[string]any{"hr": map[string]any{"dept": "Sales~FF~"}})), wantFields: []string{"hr.dept"}, wantIn: "not valid UTF-8"},
		{name: "lone surrogate", raw: strings.Replace(string(joinedJSON(t, nil)), `"Silva"`, `"Silva\udfff"`, 1), wantFields: []string{"surname"}, wantIn: "surrogate"},
		{name: "nested 32 levels", raw: strings.Replace(string(joinedJSON(t, nil)), "{", `{"x":`+strings.Repeat("[", 31)+strings.Repeat("]", 31)+",", 1)},
		{name: "nested 33 levels", raw: strings.Replace(string(joinedJSON(t, nil)), "{", `{"x":`+strings.Repeat("[", 32)+strings.Repeat("]", 32)+",", 1),
			wantFields: []string{"data"}, wantIn: "data: is nested too deeply: more than 32 levels of objects and arrays (at x[0]"},
		{name: "every problem reported", raw: `{"givenName":1,"usageLocation":"UK","sendEmail":"no"}`,
			wantFields: []string{"email", "givenName", "surname", "usageLocation", "instance", "sendEmail"}},

		// email
		{name: "email lower-cased", set: map[string]any{"email": "Ana.Silva@Fabrikam.COM"}, check: wantEmail("ana.silva@fabrikam.com")},
		{name: "email trimmed of unicode space", set: map[string]any{"email": "\u00a0 ana@fabrikam.com\t\u2003\n"}, check: wantEmail("ana@fabrikam.com")},
		{name: "email apostrophe", set: map[string]any{"email": "liam.o'brien@contoso.co.uk"}, check: wantEmail("liam.o'brien@contoso.co.uk")},
		{name: "email every atext special", set: map[string]any{"email": "a!#$%&'*+-/=?^_`{|}~z@x.io"}},
		{name: "email digits and hyphens in domain", set: map[string]any{"email": "a@my-host.123.example"}},
		{name: "email 254 characters", set: map[string]any{"email": email254}},
		{name: "email 255 characters", set: map[string]any{"email": email254 + "d"}, wantFields: []string{"email"}, wantIn: "at most 254"},
		{name: "email local part 64", set: map[string]any{"email": long("a", 64) + "@x.io"}},
		{name: "email local part 65", set: map[string]any{"email": long("a", 65) + "@x.io"}, wantFields: []string{"email"}, wantIn: "at most 64"},
		{name: "email label 63", set: map[string]any{"email": "a@" + long("b", 63) + ".io"}},
		{name: "email label 64", set: map[string]any{"email": "a@" + long("b", 64) + ".io"}, wantFields: []string{"email"}, wantIn: "at most 63"},
		{name: "email missing", del: []string{"email"}, wantFields: []string{"email"}, wantIn: "is required"},
		{name: "email null", set: map[string]any{"email": nil}, wantFields: []string{"email"}, wantIn: "is required"},
		{name: "email wrong case key", set: map[string]any{"Email": "ana@x.io"}, del: []string{"email"}, wantFields: []string{"email"}, wantIn: "case-sensitive"},
		{name: "email blank", set: map[string]any{"email": " \t "}, wantFields: []string{"email"}, wantIn: "blank"},
		{name: "email number", set: map[string]any{"email": 7}, wantFields: []string{"email"}, wantIn: "must be a JSON string, not a number"},
		{name: "email display name", set: map[string]any{"email": "Ana Silva <ana@fabrikam.com>"}, wantFields: []string{"email"}, wantIn: "display name"},
		{name: "email quoted local part", set: map[string]any{"email": `"ana silva"@fabrikam.com`}, wantFields: []string{"email"}, wantIn: "quoted"},
		{name: "email no at", set: map[string]any{"email": "ana.fabrikam.com"}, wantFields: []string{"email"}, wantIn: "no @"},
		{name: "email two ats", set: map[string]any{"email": "ana@silva@fabrikam.com"}, wantFields: []string{"email"}, wantIn: `'@'`},
		{name: "email nothing before at", set: map[string]any{"email": "@fabrikam.com"}, wantFields: []string{"email"}, wantIn: "before the @"},
		{name: "email nothing after at", set: map[string]any{"email": "ana@"}, wantFields: []string{"email"}, wantIn: "after the @"},
		{name: "email leading dot", set: map[string]any{"email": ".ana@x.io"}, wantFields: []string{"email"}, wantIn: "dot"},
		{name: "email trailing dot", set: map[string]any{"email": "ana.@x.io"}, wantFields: []string{"email"}, wantIn: "dot"},
		{name: "email double dot", set: map[string]any{"email": "ana..silva@x.io"}, wantFields: []string{"email"}, wantIn: "two dots"},
		{name: "email space", set: map[string]any{"email": "ana silva@x.io"}, wantFields: []string{"email"}, wantIn: `' '`},
		{name: "email non-ASCII local part", set: map[string]any{"email": "anä@x.io"}, wantFields: []string{"email"}},
		{name: "email single label", set: map[string]any{"email": "ana@localhost"}, wantFields: []string{"email"}, wantIn: "two labels"},
		{name: "email trailing dot in domain", set: map[string]any{"email": "ana@fabrikam.com."}, wantFields: []string{"email"}, wantIn: "empty label"},
		{name: "email label starts with hyphen", set: map[string]any{"email": "ana@-fabrikam.com"}, wantFields: []string{"email"}, wantIn: "hyphen"},
		{name: "email label ends with hyphen", set: map[string]any{"email": "ana@fabrikam-.com"}, wantFields: []string{"email"}, wantIn: "hyphen"},
		{name: "email underscore in domain", set: map[string]any{"email": "ana@fab_rikam.com"}, wantFields: []string{"email"}, wantIn: `'_'`},
		{name: "email address literal", set: map[string]any{"email": "ana@[192.0.2.1]"}, wantFields: []string{"email"}},
		{name: "email Kelvin sign is not k", set: map[string]any{"email": "ana@\u212aelvin.com"}, wantFields: []string{"email"}},

		// givenName, surname
		{name: "names trimmed", set: map[string]any{"givenName": "\u3000Ana ", "surname": "\tSilva\n"}, check: func(t *testing.T, j events.Joined) {
			if j.GivenName != "Ana" || j.Surname != "Silva" || j.DisplayName != "Ana Silva" {
				t.Errorf("got %q %q %q", j.GivenName, j.Surname, j.DisplayName)
			}
		}},
		{name: "givenName 64 code points", set: map[string]any{"givenName": long("é", 64)}},
		{name: "givenName 65 code points", set: map[string]any{"givenName": long("é", 65)}, wantFields: []string{"givenName"}, wantIn: "at most 64"},
		{name: "givenName inner space and accents", set: map[string]any{"givenName": "Zoë Anne-Marie"}},
		{name: "givenName control character", set: map[string]any{"givenName": "An\ta"}, wantFields: []string{"givenName"}, wantIn: "U+0009"},
		{name: "givenName C1 control character", set: map[string]any{"givenName": "A\u0085na"}, wantFields: []string{"givenName"}, wantIn: "control"},
		{name: "givenName missing", del: []string{"givenName"}, wantFields: []string{"givenName"}, wantIn: "is required"},
		{name: "givenName blank", set: map[string]any{"givenName": "   "}, wantFields: []string{"givenName"}, wantIn: "blank"},
		{name: "givenName boolean", set: map[string]any{"givenName": true}, wantFields: []string{"givenName"}, wantIn: "not a boolean"},
		{name: "surname 64", set: map[string]any{"surname": long("s", 64)}},
		{name: "surname 65", set: map[string]any{"surname": long("s", 65)}, wantFields: []string{"surname"}},
		{name: "surname missing", del: []string{"surname"}, wantFields: []string{"surname"}},
		{name: "surname control character", set: map[string]any{"surname": "Sil\x00va"}, wantFields: []string{"surname"}},
		{name: "surname array", set: map[string]any{"surname": []string{"Silva"}}, wantFields: []string{"surname"}, wantIn: "not an array"},

		// displayName
		{name: "displayName given", set: map[string]any{"displayName": " Ana S. "}, check: wantDisplay("Ana S.")},
		{name: "displayName null defaults", set: map[string]any{"displayName": nil}, check: wantDisplay("Ana Silva")},
		{name: "displayName 256", set: map[string]any{"displayName": long("d", 256)}},
		{name: "displayName 257", set: map[string]any{"displayName": long("d", 257)}, wantFields: []string{"displayName"}, wantIn: "at most 256"},
		{name: "displayName blank", set: map[string]any{"displayName": "  "}, wantFields: []string{"displayName"}, wantIn: "leave the field out"},
		{name: "displayName control character", set: map[string]any{"displayName": "Ana\nSilva"}, wantFields: []string{"displayName"}},
		{name: "displayName number", set: map[string]any{"displayName": 1}, wantFields: []string{"displayName"}},

		// usageLocation
		{name: "usageLocation upper-cased", set: map[string]any{"usageLocation": " pt "}, check: wantCountry("PT")},
		{name: "usageLocation mixed case", set: map[string]any{"usageLocation": "gB"}, check: wantCountry("GB")},
		{name: "usageLocation Åland", set: map[string]any{"usageLocation": "AX"}, check: wantCountry("AX")},
		{name: "usageLocation UK", set: map[string]any{"usageLocation": "UK"}, wantFields: []string{"usageLocation"}, wantIn: `usageLocation: "UK" is not an ISO 3166-1 alpha-2 code (did you mean "GB"?)`},
		{name: "usageLocation lower uk", set: map[string]any{"usageLocation": "uk"}, wantFields: []string{"usageLocation"}, wantIn: `"GB"`},
		{name: "usageLocation EL", set: map[string]any{"usageLocation": "EL"}, wantFields: []string{"usageLocation"}, wantIn: `"GR"`},
		{name: "usageLocation EU", set: map[string]any{"usageLocation": "EU"}, wantFields: []string{"usageLocation"}},
		{name: "usageLocation XX", set: map[string]any{"usageLocation": "XX"}, wantFields: []string{"usageLocation"}},
		{name: "usageLocation XK user-assigned", set: map[string]any{"usageLocation": "XK"}, wantFields: []string{"usageLocation"}},
		{name: "usageLocation alpha-3", set: map[string]any{"usageLocation": "PRT"}, wantFields: []string{"usageLocation"}, wantIn: "two-letter"},
		{name: "usageLocation one letter", set: map[string]any{"usageLocation": "P"}, wantFields: []string{"usageLocation"}},
		{name: "usageLocation non-ASCII", set: map[string]any{"usageLocation": "ſt"}, wantFields: []string{"usageLocation"}},
		{name: "usageLocation missing", del: []string{"usageLocation"}, wantFields: []string{"usageLocation"}, wantIn: "is required"},
		{name: "usageLocation blank", set: map[string]any{"usageLocation": ""}, wantFields: []string{"usageLocation"}},
		{name: "usageLocation number", set: map[string]any{"usageLocation": 351}, wantFields: []string{"usageLocation"}, wantIn: "JSON string"},

		// instance
		{name: "instance trimmed", set: map[string]any{"instance": " sales\n"}, check: func(t *testing.T, j events.Joined) {
			if j.Instance != "sales" {
				t.Errorf("instance %q", j.Instance)
			}
		}},
		{name: "instance missing", del: []string{"instance"}, wantFields: []string{"instance"}},
		{name: "instance blank", set: map[string]any{"instance": " "}, wantFields: []string{"instance"}},
		{name: "instance object", set: map[string]any{"instance": map[string]any{}}, wantFields: []string{"instance"}, wantIn: "not an object"},

		// roles
		{name: "roles trimmed", set: map[string]any{"roles": []string{" Salesperson ", "Sales Manager"}}, check: wantRoles("Salesperson", "Sales Manager")},
		{name: "roles empty array is absent", set: map[string]any{"roles": []string{}}, check: wantRoles()},
		{name: "roles null is absent", set: map[string]any{"roles": nil}, check: wantRoles()},
		{name: "roles 20", set: map[string]any{"roles": roles(20)}},
		{name: "roles 21", set: map[string]any{"roles": roles(21)}, wantFields: []string{"roles"}, wantIn: "at most 20"},
		{name: "roles a string", set: map[string]any{"roles": "Salesperson"}, wantFields: []string{"roles"}, wantIn: `["Salesperson"]`},
		{name: "roles an object", set: map[string]any{"roles": map[string]any{}}, wantFields: []string{"roles"}},
		{name: "roles item number", set: map[string]any{"roles": []any{"Salesperson", 2}}, wantFields: []string{"roles"}, wantIn: "item 2"},
		{name: "roles item blank", set: map[string]any{"roles": []any{" "}}, wantFields: []string{"roles"}, wantIn: "blank"},
		{name: "roles item null", set: map[string]any{"roles": []any{nil}}, wantFields: []string{"roles"}},

		// license
		{name: "license trimmed", set: map[string]any{"license": " DYN365_ENTERPRISE_SALES "}, check: func(t *testing.T, j events.Joined) {
			if j.License != "DYN365_ENTERPRISE_SALES" {
				t.Errorf("license %q", j.License)
			}
		}},
		{name: "license empty is absent", set: map[string]any{"license": ""}},
		{name: "license number", set: map[string]any{"license": 5}, wantFields: []string{"license"}},

		// message
		{name: "message 2000 code points", set: map[string]any{"message": long("ü", 2000)}},
		{name: "message 2001 code points", set: map[string]any{"message": long("ü", 2001)}, wantFields: []string{"message"}, wantIn: "at most 2000"},
		{name: "message kept as plain text", set: map[string]any{"message": " <b>Hi</b>\nwelcome "}, check: func(t *testing.T, j events.Joined) {
			if j.Message != "<b>Hi</b>\nwelcome" {
				t.Errorf("message %q", j.Message)
			}
		}},
		{name: "message array", set: map[string]any{"message": []string{"hi"}}, wantFields: []string{"message"}},

		// sendEmail
		{name: "sendEmail absent", check: wantSend(nil)},
		{name: "sendEmail null", set: map[string]any{"sendEmail": nil}, check: wantSend(nil)},
		{name: "sendEmail false", set: map[string]any{"sendEmail": false}, check: wantSend(ptr(false))},
		{name: "sendEmail true", set: map[string]any{"sendEmail": true}, check: wantSend(ptr(true))},
		{name: "sendEmail string", set: map[string]any{"sendEmail": "true"}, wantFields: []string{"sendEmail"}, wantIn: "remove the quotes"},
		{name: "sendEmail number", set: map[string]any{"sendEmail": 0}, wantFields: []string{"sendEmail"}, wantIn: "JSON boolean"},

		// redirectUrl
		{name: "redirectUrl https", set: map[string]any{"redirectUrl": " https://contoso-sales.crm4.dynamics.com/main.aspx?appid=1 "}, check: func(t *testing.T, j events.Joined) {
			if j.RedirectURL != "https://contoso-sales.crm4.dynamics.com/main.aspx?appid=1" {
				t.Errorf("redirectUrl %q", j.RedirectURL)
			}
		}},
		{name: "redirectUrl with port", set: map[string]any{"redirectUrl": "https://127.0.0.1:9443/instances/sales"}},
		{name: "redirectUrl 2048", set: map[string]any{"redirectUrl": "https://x.io/" + long("p", 2048-13)}},
		{name: "redirectUrl 2049", set: map[string]any{"redirectUrl": "https://x.io/" + long("p", 2049-13)}, wantFields: []string{"redirectUrl"}, wantIn: "at most 2048"},
		{name: "redirectUrl http", set: map[string]any{"redirectUrl": "http://contoso.com"}, wantFields: []string{"redirectUrl"}, wantIn: "https"},
		{name: "redirectUrl relative", set: map[string]any{"redirectUrl": "/main.aspx"}, wantFields: []string{"redirectUrl"}},
		{name: "redirectUrl no scheme", set: map[string]any{"redirectUrl": "contoso.com"}, wantFields: []string{"redirectUrl"}},
		{name: "redirectUrl no host", set: map[string]any{"redirectUrl": "https:///path"}, wantFields: []string{"redirectUrl"}},
		{name: "redirectUrl unparsable", set: map[string]any{"redirectUrl": "https://a b.com"}, wantFields: []string{"redirectUrl"}},
		{name: "redirectUrl blank", set: map[string]any{"redirectUrl": ""}, wantFields: []string{"redirectUrl"}},
		{name: "redirectUrl boolean", set: map[string]any{"redirectUrl": true}, wantFields: []string{"redirectUrl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// ~FF~ stands for a byte that is not UTF-8: json.Marshal,
			// which builds most cases, cannot write one.
			data := []byte(strings.ReplaceAll(tt.raw, "~FF~", "\xff"))
			if tt.raw == "" {
				data = joinedJSON(t, tt.set, tt.del...)
			}
			j, err := events.ParseJoined(data)
			if tt.wantFields == nil {
				if err != nil {
					t.Fatalf("ParseJoined(%s): %v", data, err)
				}
				if tt.check != nil {
					tt.check(t, j)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseJoined(%s) = %+v, want an error about %v", data, j, tt.wantFields)
			}
			if !errors.Is(err, events.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			var fields []string
			for _, fe := range fieldErrors(t, err) {
				fields = append(fields, fe.Field)
				if fe.Error() != fe.Field+": "+fe.Problem {
					t.Errorf("Error() = %q", fe.Error())
				}
			}
			if !slices.Equal(fields, tt.wantFields) {
				t.Errorf("fields with problems %v, want %v (error: %v)", fields, tt.wantFields, err)
			}
			if !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("error %q does not contain %q", err, tt.wantIn)
			}
		})
	}
}

func wantEmail(want string) func(*testing.T, events.Joined) {
	return func(t *testing.T, j events.Joined) {
		if j.Email != want {
			t.Errorf("email %q, want %q", j.Email, want)
		}
	}
}

func wantDisplay(want string) func(*testing.T, events.Joined) {
	return func(t *testing.T, j events.Joined) {
		if j.DisplayName != want {
			t.Errorf("displayName %q, want %q", j.DisplayName, want)
		}
	}
}

func wantCountry(want string) func(*testing.T, events.Joined) {
	return func(t *testing.T, j events.Joined) {
		if j.UsageLocation != want {
			t.Errorf("usageLocation %q, want %q", j.UsageLocation, want)
		}
	}
}

func wantRoles(want ...string) func(*testing.T, events.Joined) {
	return func(t *testing.T, j events.Joined) {
		if !slices.Equal(j.Roles, want) || (len(want) == 0 && j.Roles != nil) {
			t.Errorf("roles %#v, want %#v", j.Roles, want)
		}
	}
}

func wantSend(want *bool) func(*testing.T, events.Joined) {
	return func(t *testing.T, j events.Joined) {
		if !reflect.DeepEqual(j.SendEmail, want) {
			t.Errorf("sendEmail %v, want %v", j.SendEmail, want)
		}
	}
}
