package config

import (
	"net/url"
	"slices"
	"strings"
)

// RoleAllowed reports whether AllowedRoles grants the role name, compared
// as Dataverse compares role names: case-insensitively. AnyRole matches
// every name here; whether the role behind a name carries the System
// Administrator privilege is only known in the environment, so the role
// step checks that again on the role it resolved (RoleAllowedByName).
func (in Instance) RoleAllowed(name string) bool {
	return in.RoleAllowedByName(name) || slices.Contains(in.AllowedRoles, AnyRole)
}

// RoleAllowedByName reports whether AllowedRoles lists the role by name,
// which a role with the System Administrator privilege requires.
func (in Instance) RoleAllowedByName(name string) bool {
	return slices.ContainsFunc(in.AllowedRoles, func(r string) bool { return strings.EqualFold(r, name) })
}

// LicenseAllowed reports whether AllowedLicenses grants the SKU part number.
func (in Instance) LicenseAllowed(part string) bool {
	return slices.ContainsFunc(in.AllowedLicenses, func(l string) bool { return strings.EqualFold(l, part) })
}

// RedirectAllowed reports whether raw is an https URL on one of
// AllowedRedirectHosts or on the instance URL's own host, which is the
// default redirect and so always allowed. An entry with a port matches
// that port only; one without matches the host on any port.
func (in Instance) RedirectAllowed(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.User != nil {
		return false
	}
	host, name := strings.ToLower(u.Host), strings.ToLower(u.Hostname())
	if own, err := url.Parse(in.URL); err == nil && strings.EqualFold(own.Host, host) {
		return true
	}
	return slices.ContainsFunc(in.AllowedRedirectHosts, func(h string) bool {
		h = strings.ToLower(h)
		return h == host || h == name
	})
}
