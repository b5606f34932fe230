package graphsim

import (
	"fmt"
	"testing"
)

// TestAFilterByAddressReadsOnlyItsUsers: a $filter on an indexed property
// narrows to the users holding the value, with the same answer a scan
// gives; one that does not narrow scans.
func TestAFilterByAddressReadsOnlyItsUsers(t *testing.T) {
	st := &state{byID: map[string]*user{}, byUPN: map[string]*user{}}
	for i := range 500 {
		st.addUser(&user{id: fmt.Sprintf("id-%d", i), upn: fmt.Sprintf("u%d#EXT#@t.example", i),
			mail: fmt.Sprintf("U%d@Example.com", i), otherMails: []string{fmt.Sprintf("alt%d@example.org", i)}, userType: "Guest"})
	}
	for _, tc := range []struct {
		filter string
		narrow int // users read; 0: all of them
	}{
		{"mail eq 'u7@example.com'", 1},
		{"mail eq 'u7@example.com' or otherMails/any(m:m eq 'ALT9@example.org')", 2},
		{"userPrincipalName eq 'u3#EXT#@t.example' and userType eq 'Guest'", 1},
		{"userType eq 'Guest'", 0},
		{"not (mail eq 'u7@example.com')", 0},
		{"mail eq 'nobody@example.com'", -1},
	} {
		f, err := parseFilter(tc.filter, userEntity)
		if err != nil {
			t.Fatalf("%s: %v", tc.filter, err)
		}
		read := st.usersFor(f)
		switch {
		case tc.narrow == 0 && len(read) != len(st.users):
			t.Errorf("%s: read %d users, want all %d (it does not narrow)", tc.filter, len(read), len(st.users))
		case tc.narrow == -1 && len(read) != 0, tc.narrow > 0 && len(read) != tc.narrow:
			t.Errorf("%s: read %d users, want %d", tc.filter, len(read), max(tc.narrow, 0))
		}
		var want, got []string
		for _, u := range st.users {
			if f.eval(u.row(), nil) {
				want = append(want, u.id)
			}
		}
		for _, u := range read {
			if f.eval(u.row(), nil) {
				got = append(got, u.id)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %v, a scan finds %v", tc.filter, got, want)
		}
	}
}
