package graphsim

import (
	"strings"
	"testing"
)

func TestParseFilter(t *testing.T) {
	r := row{
		"mail": "Liam.O'Brien@x.com", "userType": "Guest", "id": "u1", "displayName": nil,
		"otherMails": []string{"a@x.com", "B@y.com"}, "accountEnabled": true,
	}
	tests := []struct {
		filter string
		match  bool
		err    string
	}{
		{"mail eq 'liam.o''brien@x.com'", true, ""},
		{"mail eq 'liam.o''brien@x.co'", false, ""},
		{"Mail eq 'liam.o''brien@x.com'", true, ""}, // Graph property names fold case
		{"displayName eq null", true, ""},
		{"mail eq null", false, ""},
		{"accountEnabled eq true", true, ""},
		{"otherMails/any(x:x eq 'b@y.com')", true, ""},
		{"otherMails/any(x: x eq 'c@y.com' or x eq 'a@x.com')", true, ""},
		{"otherMails/any(x:x eq 'c@y.com')", false, ""},
		{"userType eq 'Member' or (userType eq 'Guest' and id eq 'u1')", true, ""},
		{"userType eq 'Guest' and id eq 'u2' or id eq 'u1'", true, ""}, // and binds tighter
		{"not (userType eq 'Guest')", false, ""},
		{"mail eq 'o'brien'", false, "unterminated string"}, // 'o' brien '…
		{"mail eq 'open", false, "unterminated string"},
		{"mail eq 5", false, "Syntax error"},
		{"mail eq 6a1b2c3d-0000-4000-8000-00000000d365", false, "incompatible types"},
		{"accountEnabled eq 'true'", false, "incompatible types"},
		{"otherMails eq 'a@x.com'", false, "incompatible types"},
		{"mail/any(x:x eq 'a')", false, "must be a collection"},
		{"otherMails/any(x:otherMails/any(x:x eq 'a'))", false, "already been declared"},
		{"x eq 'a'", false, "Could not find a property named 'x'"},
		{"startswith(mail,'l')", false, "unknown function"},
		{"mail ne 'a'", false, "not supported"},
		{"mail eq 'a' mail eq 'b'", false, "Syntax error"},
		{"(mail eq 'a'", false, "Syntax error"},
		{"mail eq 'a' & id eq 'b'", false, "not valid"},
		{strings.Repeat("(", 40) + "mail eq 'a'" + strings.Repeat(")", 40), false, "nested too deeply"},
		{"  ", false, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			e, err := parseFilter(tt.filter, userEntity)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := e.eval(r, nil); got != tt.match {
				t.Errorf("match %v, want %v", got, tt.match)
			}
		})
	}
}

func TestParseFilterDataverse(t *testing.T) {
	id := "6A1B2C3D-0000-4000-8000-00000000D365"
	r := row{"azureactivedirectoryobjectid": strings.ToLower(id), "systemuserid": "x", "internalemailaddress": "a@b.c",
		"domainname": "d", "fullname": nil, "_businessunitid_value": "bu", "isdisabled": false}
	if e, err := parseFilter("azureactivedirectoryobjectid eq "+id, systemuserEntity.entity); err != nil || !e.eval(r, nil) {
		t.Errorf("GUID literal: %v", err)
	}
	if _, err := parseFilter("Azureactivedirectoryobjectid eq "+id, systemuserEntity.entity); err == nil {
		t.Error("Dataverse property names must match exactly")
	}
}
