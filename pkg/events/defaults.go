package events

import (
	"slices"
	"strings"
)

// Defaults are an instance's configured values for what a joined event may
// leave out. They come from the configuration, which this package does not
// read, so the invite step passes them in.
type Defaults struct {
	Roles   []string
	License string
	URL     string // the instance URL, where the invitation lands by default
}

// ApplyDefaults fills in what the event left empty, so that later events carry
// the whole decision and no step needs the configuration to interpret them.
// SendEmail becomes explicit for the same reason.
func (j *Joined) ApplyDefaults(d Defaults) {
	if len(j.Roles) == 0 {
		j.Roles = slices.Clone(d.Roles)
	}
	if j.License == "" {
		j.License = d.License
	}
	if j.RedirectURL == "" {
		j.RedirectURL = d.URL
	}
	if j.DisplayName == "" {
		j.DisplayName = strings.TrimSpace(j.GivenName + " " + j.Surname)
	}
	send := j.SendsEmail()
	j.SendEmail = &send
}
