package events_test

import (
	"reflect"
	"testing"

	"github.com/guestflow/guestflow/pkg/events"
)

func TestApplyDefaults(t *testing.T) {
	d := events.Defaults{Roles: []string{"Salesperson"}, License: "DYN365_ENTERPRISE_SALES", URL: "https://contoso-sales.crm4.dynamics.com"}
	tests := []struct {
		name string
		in   events.Joined
		want events.Joined
	}{
		{
			name: "everything defaulted",
			in:   events.Joined{GivenName: "Ana", Surname: "Silva"},
			want: events.Joined{GivenName: "Ana", Surname: "Silva", DisplayName: "Ana Silva", Roles: []string{"Salesperson"}, License: "DYN365_ENTERPRISE_SALES", RedirectURL: "https://contoso-sales.crm4.dynamics.com", SendEmail: ptr(true)},
		},
		{
			name: "event wins",
			in:   events.Joined{DisplayName: "A. S.", Roles: []string{"Sales Manager"}, License: "DYN365_ENTERPRISE_PLAN1", RedirectURL: "https://x.io/", SendEmail: ptr(false)},
			want: events.Joined{DisplayName: "A. S.", Roles: []string{"Sales Manager"}, License: "DYN365_ENTERPRISE_PLAN1", RedirectURL: "https://x.io/", SendEmail: ptr(false)},
		},
		{
			name: "explicit true kept",
			in:   events.Joined{DisplayName: "x", SendEmail: ptr(true)},
			want: events.Joined{DisplayName: "x", Roles: []string{"Salesperson"}, License: "DYN365_ENTERPRISE_SALES", RedirectURL: "https://contoso-sales.crm4.dynamics.com", SendEmail: ptr(true)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in
			got.ApplyDefaults(d)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// The configuration's slice must not be shared with the event: a step that
// appends to the roles would otherwise change them for every later user.
func TestApplyDefaultsCopiesRoles(t *testing.T) {
	d := events.Defaults{Roles: []string{"Salesperson"}}
	var j events.Joined
	j.ApplyDefaults(d)
	j.Roles[0] = "System Administrator"
	if d.Roles[0] != "Salesperson" {
		t.Errorf("defaults changed to %v", d.Roles)
	}
}
