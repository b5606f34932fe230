package events

import "testing"

// The list is typed by hand, so its size and a few well-known traps are
// pinned here.
func TestCountries(t *testing.T) {
	if len(countries) != 249 {
		t.Errorf("%d codes, want the 249 officially assigned", len(countries))
	}
	for _, c := range []string{"PT", "GB", "US", "DE", "AX", "BQ", "CW", "SS", "SX", "TL", "ZW"} {
		if !countries[c] {
			t.Errorf("%s missing", c)
		}
	}
	for _, c := range []string{"UK", "EU", "EL", "XX", "XK", "AN", "CS", "YU", "ZZ", "AA", "UN", "FX"} {
		if countries[c] {
			t.Errorf("%s is not officially assigned", c)
		}
	}
}
