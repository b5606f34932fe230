package config

import (
	"slices"
	"strings"
	"testing"
)

func TestAllowListsDefaultToWhatTheInstanceGrantsItself(t *testing.T) {
	c := Config{Instances: map[string]Instance{"sales": {
		URL: "https://Contoso-Sales.crm4.dynamics.com/", License: "DYN365_ENTERPRISE_SALES", Roles: []string{"Salesperson"},
	}}}
	c.SetDefaults()
	in := c.Instances["sales"]
	if !slices.Equal(in.AllowedRoles, []string{"Salesperson"}) || !slices.Equal(in.AllowedLicenses, []string{"DYN365_ENTERPRISE_SALES"}) ||
		!slices.Equal(in.AllowedRedirectHosts, []string{"contoso-sales.crm4.dynamics.com", "myapps.microsoft.com", "myapplications.microsoft.com"}) ||
		in.AllowMembers {
		t.Errorf("defaults: %+v", in)
	}
}

func TestAllowListChecks(t *testing.T) {
	in := Instance{
		URL:                  "https://sales.example:8443",
		AllowedRoles:         []string{"Salesperson", AnyRole},
		AllowedLicenses:      []string{"DYN365_ENTERPRISE_SALES"},
		AllowedRedirectHosts: []string{"portal.contoso.example", "pinned.contoso.example:9443"},
	}
	for _, tc := range []struct {
		name string
		got  bool
		want bool
	}{
		{"role by name, any case", in.RoleAllowedByName("salesperson"), true},
		{"role through the wildcard", in.RoleAllowed("Sales Manager"), true},
		{"the wildcard is not a name", in.RoleAllowedByName("Sales Manager"), false},
		{"license, any case", in.LicenseAllowed("dyn365_enterprise_sales"), true},
		{"another license", in.LicenseAllowed("DYN365_ENTERPRISE_PLAN1"), false},
		{"no license", in.LicenseAllowed(""), false},
		{"listed host", in.RedirectAllowed("https://portal.contoso.example/welcome"), true},
		{"listed host, other port", in.RedirectAllowed("https://portal.contoso.example:444/"), true},
		{"pinned port", in.RedirectAllowed("https://pinned.contoso.example:9443/"), true},
		{"pinned host, other port", in.RedirectAllowed("https://pinned.contoso.example/"), false},
		{"the instance's own URL", in.RedirectAllowed("https://sales.example:8443/main.aspx"), true},
		{"a look-alike", in.RedirectAllowed("https://portal.contoso.example.attacker.example/"), false},
		{"http", in.RedirectAllowed("http://portal.contoso.example/"), false},
		{"credentials in the URL", in.RedirectAllowed("https://portal.contoso.example@attacker.example/"), false},
		{"not a URL", in.RedirectAllowed("::"), false},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestDefaultsOutsideTheAllowListsAreConfigErrors(t *testing.T) {
	c := Config{
		Tenant: Tenant{ID: "t"}, Notify: Notify{Sender: "s@contoso.example"},
		Instances: map[string]Instance{"sales": {
			URL: "https://sales.example", License: "DYN365_ENTERPRISE_SALES", Roles: []string{"Salesperson"},
			AllowedRoles: []string{"Sales Manager"}, AllowedLicenses: []string{"DYN365_ENTERPRISE_PLAN1"},
			AllowedRedirectHosts: []string{"https://portal.example/"},
		}},
	}
	c.SetDefaults()
	err := c.Validate()
	for _, want := range []string{`instances.sales.roles: "Salesperson" is not in allowedRoles`,
		`instances.sales.license: "DYN365_ENTERPRISE_SALES" is not in allowedLicenses`,
		`instances.sales.allowedRedirectHosts: "https://portal.example/" is not a host name`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validation %v lacks %q", err, want)
		}
	}
}

func TestAllowListsFromTheEnvironment(t *testing.T) {
	var c Config
	err := c.Override([]string{
		"GUESTFLOW_INSTANCES_SALES_ALLOWEDROLES=Salesperson, Sales Manager",
		"GUESTFLOW_INSTANCES_SALES_ALLOWEDLICENSES=DYN365_ENTERPRISE_SALES",
		"GUESTFLOW_INSTANCES_SALES_ALLOWEDREDIRECTHOSTS=portal.contoso.example",
		"GUESTFLOW_INSTANCES_SALES_ALLOWMEMBERS=true",
	})
	if err != nil {
		t.Fatal(err)
	}
	in := c.Instances["sales"]
	if !slices.Equal(in.AllowedRoles, []string{"Salesperson", "Sales Manager"}) || !slices.Equal(in.AllowedLicenses, []string{"DYN365_ENTERPRISE_SALES"}) ||
		!slices.Equal(in.AllowedRedirectHosts, []string{"portal.contoso.example"}) || !in.AllowMembers {
		t.Errorf("from the environment: %+v", in)
	}
	if err := c.Override([]string{"GUESTFLOW_INSTANCES_SALES_ALLOWMEMBERS=maybe"}); err == nil {
		t.Error("a non-boolean allowMembers was accepted")
	}
}

func TestURLErrorsHideCredentials(t *testing.T) {
	c := Config{
		Tenant: Tenant{ID: "t", GraphURL: "https://admin:hunter2@graph.example", AuthorityHost: "http://admin:hunter2@login.example/"},
		Notify: Notify{Sender: "s@contoso.example"},
		Instances: map[string]Instance{"sales": {
			URL: "https://admin:hunter2@sales.example:bad", License: "L", Roles: []string{"R"},
		}},
	}
	err := c.Validate()
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("validation error shows the password: %v", err)
	}
	if !strings.Contains(err.Error(), "tenant.graphURL") || !strings.Contains(err.Error(), "has credentials") {
		t.Errorf("validation error does not name the problem: %v", err)
	}
}
