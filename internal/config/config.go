// Package config is guestflow's configuration file (docs/configuration.md): its shape,
// defaults, validation and GUESTFLOW_… environment overrides. Only main reads
// it; every other package receives the values it needs.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/guestflow/guestflow/internal/textsafe"
)

// Config is the whole guestflow.yaml.
type Config struct {
	NATS      NATS                `yaml:"nats"`
	Tenant    Tenant              `yaml:"tenant"`
	Notify    Notify              `yaml:"notify"`
	Instances map[string]Instance `yaml:"instances"`
	Intake    Intake              `yaml:"intake,omitempty"`
}

// Tenant says which Entra tenant and which Microsoft endpoints to use. The
// endpoints are configurable so the same code talks to the emulator.
type Tenant struct {
	ID            string `yaml:"id"`
	GraphURL      string `yaml:"graphURL"`
	AuthorityHost string `yaml:"authorityHost"`
	// CAFile is a PEM bundle trusted in addition to the system roots.
	CAFile string `yaml:"caFile"`
	// PowerPlatformURL is the Power Platform admin API (BAP) that the role
	// step calls to force a user sync into an instance with an
	// environmentId.
	PowerPlatformURL string `yaml:"powerPlatformURL"`
}

// Intake configures `guestflow intake`, the HTTP door for HR systems
// (docs/intake.md). A key left out takes the flag's default, and a flag
// given on the command line wins over the key. Relative paths in the file
// are resolved against the file's folder.
type Intake struct {
	Listen         string  `yaml:"listen,omitempty"`
	TLSCert        string  `yaml:"tlsCert,omitempty"`
	TLSKey         string  `yaml:"tlsKey,omitempty"`
	ClientCA       string  `yaml:"clientCA,omitempty"`
	TokensFile     string  `yaml:"tokensFile,omitempty"`
	HMACSecretFile string  `yaml:"hmacSecretFile,omitempty"`
	Rate           float64 `yaml:"rate,omitempty"`
	Burst          int     `yaml:"burst,omitempty"`
	// BodyLimit bounds a request body in bytes (a batch; a single event
	// is also bounded by the joined event's 64 KiB).
	BodyLimit         int64         `yaml:"bodyLimit,omitempty"`
	ReadTimeout       time.Duration `yaml:"readTimeout,omitempty"`
	ReadHeaderTimeout time.Duration `yaml:"readHeaderTimeout,omitempty"`
	IdleTimeout       time.Duration `yaml:"idleTimeout,omitempty"`
	PublishTimeout    time.Duration `yaml:"publishTimeout,omitempty"`
}

// paths are the intake's file settings, for resolving them against the
// configuration file's folder.
func (in *Intake) paths() []*string {
	return []*string{&in.TLSCert, &in.TLSKey, &in.ClientCA, &in.TokensFile, &in.HMACSecretFile}
}

// Notify configures the notification mail.
type Notify struct {
	Sender string `yaml:"sender"`
}

// Instance is one Dynamics 365 environment guests are onboarded into.
type Instance struct {
	URL             string   `yaml:"url"`
	EnvironmentID   string   `yaml:"environmentId"`
	SecurityGroupID string   `yaml:"securityGroupId"`
	License         string   `yaml:"license"`
	Roles           []string `yaml:"roles"`
	BusinessUnit    string   `yaml:"businessUnit"`
	// LegacyEmailUpdate is true for versions before Dynamics 365, whose
	// systemuser keeps the #EXT# address until it is fixed.
	LegacyEmailUpdate bool `yaml:"legacyEmailUpdate"`

	// The allow-lists bound what an event may ask for. Events are
	// requests from any system with publish rights, so the configuration
	// is the only authority on what may be granted; every step checks an
	// event against these before acting on it.

	// AllowedRoles are the security roles an event may request; default
	// Roles. "*" allows any role of the environment except one with the
	// System Administrator privilege, which must be listed by name.
	AllowedRoles []string `yaml:"allowedRoles"`
	// AllowedLicenses are the SKU part numbers an event may request;
	// default License.
	AllowedLicenses []string `yaml:"allowedLicenses"`
	// AllowedRedirectHosts are the hosts an event's redirectUrl may land
	// on; default the instance URL's host and Microsoft's My Apps portals.
	AllowedRedirectHosts []string `yaml:"allowedRedirectHosts"`
	// AllowMembers lets an onboarding name a member of the tenant rather
	// than a guest. A member's profile belongs to the organisation's own
	// identity source: guestflow never changes it, it only adds a missing
	// license and the roles.
	AllowMembers bool `yaml:"allowMembers"`
}

// AnyRole in AllowedRoles allows every role but a System Administrator.
const AnyRole = "*"

// MyAppsHosts are Microsoft's My Apps portals, where Microsoft itself sends
// invitation redemptions by default; they are always safe redirects.
var MyAppsHosts = []string{"myapps.microsoft.com", "myapplications.microsoft.com"}

// setAllowDefaults fills the allow-lists an instance leaves out, so that an
// instance configured before they existed grants exactly what it did.
func (in *Instance) setAllowDefaults() {
	if len(in.AllowedRoles) == 0 {
		in.AllowedRoles = append([]string(nil), in.Roles...)
	}
	if len(in.AllowedLicenses) == 0 && in.License != "" {
		in.AllowedLicenses = []string{in.License}
	}
	if len(in.AllowedRedirectHosts) == 0 {
		if u, err := url.Parse(in.URL); err == nil && u.Host != "" {
			in.AllowedRedirectHosts = append(in.AllowedRedirectHosts, strings.ToLower(u.Host))
		}
		in.AllowedRedirectHosts = append(in.AllowedRedirectHosts, MyAppsHosts...)
	}
}

// Default endpoints of the public cloud.
const (
	DefaultNATSURL       = "nats://127.0.0.1:4222"
	DefaultGraphURL      = "https://graph.microsoft.com"
	DefaultAuthorityHost = "https://login.microsoftonline.com/"
	DefaultPowerPlatform = "https://api.bap.microsoft.com"
)

// Load reads the YAML file at path (a missing file is an error only when
// mustExist), applies the GUESTFLOW_… overrides found in environ (as
// os.Environ returns it), fills defaults and validates. A relative path in
// the file (tenant.caFile, the files of the nats section) is resolved
// against the file's folder.
func Load(path string, mustExist bool, environ []string) (Config, error) {
	c, err := LoadUnvalidated(path, mustExist, environ)
	if err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// LoadUnvalidated is Load for commands that need only part of the
// configuration (publish needs the NATS URL, not a tenant).
func LoadUnvalidated(path string, mustExist bool, environ []string) (Config, error) {
	var c Config
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := Parse(raw, &c); err != nil {
			return Config{}, fmt.Errorf("config %s: %w", path, err)
		}
		if c.Tenant.CAFile != "" && !filepath.IsAbs(c.Tenant.CAFile) {
			c.Tenant.CAFile = filepath.Join(filepath.Dir(path), c.Tenant.CAFile)
		}
		c.NATS.resolve(filepath.Dir(path))
		for _, p := range c.Intake.paths() {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(filepath.Dir(path), *p)
			}
		}
	case errors.Is(err, os.ErrNotExist) && !mustExist:
	default:
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if err := c.Override(environ); err != nil {
		return Config{}, err
	}
	c.SetDefaults()
	return c, nil
}

// Parse decodes YAML strictly: an unknown key is an error, because a typo in
// a key would otherwise silently fall back to a default. A secret written
// into the nats section is refused with where it goes instead.
func Parse(raw []byte, c *Config) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return err
	}
	if err := refuseSecrets(&doc); err != nil {
		return err
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && err.Error() != "EOF" {
		return err
	}
	return nil
}

// Marshal encodes c as YAML.
func (c Config) Marshal() ([]byte, error) { return yaml.Marshal(c) }

// SetDefaults fills what the file may leave out.
func (c *Config) SetDefaults() {
	if c.NATS.URL == "" && len(c.NATS.URLs) == 0 {
		c.NATS.URL = DefaultNATSURL
	}
	if c.Tenant.GraphURL == "" {
		c.Tenant.GraphURL = DefaultGraphURL
	}
	if c.Tenant.AuthorityHost == "" {
		c.Tenant.AuthorityHost = DefaultAuthorityHost
	}
	if c.Tenant.PowerPlatformURL == "" {
		c.Tenant.PowerPlatformURL = DefaultPowerPlatform
	}
	c.Tenant.PowerPlatformURL = strings.TrimSuffix(c.Tenant.PowerPlatformURL, "/")
	if !strings.HasSuffix(c.Tenant.AuthorityHost, "/") {
		c.Tenant.AuthorityHost += "/"
	}
	c.Tenant.GraphURL = strings.TrimSuffix(c.Tenant.GraphURL, "/")
	for name, in := range c.Instances {
		in.URL = strings.TrimSuffix(in.URL, "/")
		in.setAllowDefaults()
		c.Instances[name] = in
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if err := c.NATS.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Tenant.ID == "" {
		bad("tenant.id is required (or set GUESTFLOW_TENANT_ID)")
	}
	for _, u := range []struct{ key, v string }{
		{"tenant.graphURL", c.Tenant.GraphURL},
		{"tenant.authorityHost", c.Tenant.AuthorityHost},
		{"tenant.powerPlatformURL", c.Tenant.PowerPlatformURL},
	} {
		if err := httpsURL(u.v); err != nil {
			bad("%s: %v", u.key, err)
		}
	}
	if c.Tenant.CAFile != "" {
		if _, err := os.Stat(c.Tenant.CAFile); err != nil {
			bad("tenant.caFile: %v", err)
		}
	}
	if c.Notify.Sender == "" {
		bad("notify.sender is required: the mailbox the onboarding mail is sent from")
	}
	if len(c.Instances) == 0 {
		bad("instances: at least one instance is required")
	}
	for _, name := range c.InstanceNames() {
		in := c.Instances[name]
		if err := httpsURL(in.URL); err != nil {
			bad("instances.%s.url: %v", name, err)
		}
		if in.License == "" {
			bad("instances.%s.license is required (a SKU part number such as DYN365_ENTERPRISE_SALES)", name)
		}
		if len(in.Roles) == 0 {
			bad("instances.%s.roles: at least one security role name is required", name)
		}
		for _, r := range in.Roles {
			if !in.RoleAllowed(r) {
				bad("instances.%s.roles: %q is not in allowedRoles, so no onboarding could use the default", name, r)
			}
		}
		if in.License != "" && !in.LicenseAllowed(in.License) {
			bad("instances.%s.license: %q is not in allowedLicenses, so no onboarding could use the default", name, in.License)
		}
		for _, h := range in.AllowedRedirectHosts {
			if h == "" || strings.ContainsAny(h, "/*@ ") {
				bad("instances.%s.allowedRedirectHosts: %q is not a host name (no scheme, path or wildcard)", name, h)
			}
		}
	}
	return errors.Join(errs...)
}

// InstanceNames returns the configured instance names, sorted.
func (c Config) InstanceNames() []string {
	names := make([]string, 0, len(c.Instances))
	for n := range c.Instances {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// httpsURL checks s; its errors show s with any credentials redacted, since
// they end up in logs.
func httpsURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return textsafe.URLError(err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%q is not an absolute https URL", textsafe.URL(s))
	}
	if u.User != nil {
		return fmt.Errorf("%q has credentials in it; Microsoft endpoints take none, and secrets never go in the configuration", textsafe.URL(s))
	}
	return nil
}

// Override applies GUESTFLOW_… environment variables. Names are the YAML
// path in upper case joined by underscores: GUESTFLOW_NATS_URL,
// GUESTFLOW_NATS_TLS_CAFILE, GUESTFLOW_TENANT_GRAPHURL,
// GUESTFLOW_INSTANCES_SALES_SECURITYGROUPID. An instance variable for an
// instance the file lacks creates it; lists are comma-separated.
// GUESTFLOW_NATS_URL and GUESTFLOW_NATS_URLS each replace the whole server
// list, whichever key the file used. GUESTFLOW_NATS_PASSWORD and
// GUESTFLOW_NATS_TOKEN have no key in the file: secrets never go there.
func (c *Config) Override(environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "GUESTFLOW_") {
			env[k] = v
		}
	}
	getenv := func(k string) string { return env[k] }
	if v := getenv("GUESTFLOW_NATS_URL"); v != "" {
		c.NATS.SetServers(v)
	}
	if v := getenv("GUESTFLOW_NATS_URLS"); v != "" {
		c.NATS.URL, c.NATS.URLs = "", splitList(v)
	}
	str := map[string]*string{
		"NATS_CREDS":              &c.NATS.Creds,
		"NATS_NKEYFILE":           &c.NATS.NKeyFile,
		"NATS_USER":               &c.NATS.User,
		"NATS_PASSWORDFILE":       &c.NATS.PasswordFile,
		"NATS_PASSWORD":           &c.NATS.Password,
		"NATS_TOKENFILE":          &c.NATS.TokenFile,
		"NATS_TOKEN":              &c.NATS.Token,
		"NATS_TLS_CAFILE":         &c.NATS.TLS.CAFile,
		"NATS_TLS_CERTFILE":       &c.NATS.TLS.CertFile,
		"NATS_TLS_KEYFILE":        &c.NATS.TLS.KeyFile,
		"NATS_TLS_SERVERNAME":     &c.NATS.TLS.ServerName,
		"NATS_INBOXPREFIX":        &c.NATS.InboxPrefix,
		"TENANT_ID":               &c.Tenant.ID,
		"TENANT_GRAPHURL":         &c.Tenant.GraphURL,
		"TENANT_AUTHORITYHOST":    &c.Tenant.AuthorityHost,
		"TENANT_CAFILE":           &c.Tenant.CAFile,
		"TENANT_POWERPLATFORMURL": &c.Tenant.PowerPlatformURL,
		"NOTIFY_SENDER":           &c.Notify.Sender,
		"INTAKE_LISTEN":           &c.Intake.Listen,
		"INTAKE_TLSCERT":          &c.Intake.TLSCert,
		"INTAKE_TLSKEY":           &c.Intake.TLSKey,
		"INTAKE_CLIENTCA":         &c.Intake.ClientCA,
		"INTAKE_TOKENSFILE":       &c.Intake.TokensFile,
		"INTAKE_HMACSECRETFILE":   &c.Intake.HMACSecretFile,
	}
	for k, p := range str {
		if v := getenv("GUESTFLOW_" + k); v != "" {
			*p = v
		}
	}
	if v := getenv("GUESTFLOW_NATS_REPLICAS"); v != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("GUESTFLOW_NATS_REPLICAS: %q is not a whole number", v)
		}
		c.NATS.Replicas = n
	}
	if v := getenv("GUESTFLOW_NATS_DLQMAXBYTES"); v != "" {
		b, err := ParseByteSize(v)
		if err != nil {
			return fmt.Errorf("GUESTFLOW_NATS_DLQMAXBYTES: %w", err)
		}
		c.NATS.DLQMaxBytes = b
	}
	if err := c.Intake.override(getenv); err != nil {
		return err
	}
	for _, name := range instanceNamesInEnv(environ) {
		if c.Instances == nil {
			c.Instances = map[string]Instance{}
		}
		in := c.Instances[name]
		prefix := "GUESTFLOW_INSTANCES_" + strings.ToUpper(name) + "_"
		fields := map[string]*string{
			"URL": &in.URL, "ENVIRONMENTID": &in.EnvironmentID, "SECURITYGROUPID": &in.SecurityGroupID,
			"LICENSE": &in.License, "BUSINESSUNIT": &in.BusinessUnit,
		}
		for k, p := range fields {
			if v := getenv(prefix + k); v != "" {
				*p = v
			}
		}
		lists := map[string]*[]string{
			"ROLES": &in.Roles, "ALLOWEDROLES": &in.AllowedRoles,
			"ALLOWEDLICENSES": &in.AllowedLicenses, "ALLOWEDREDIRECTHOSTS": &in.AllowedRedirectHosts,
		}
		for k, p := range lists {
			if v := getenv(prefix + k); v != "" {
				*p = splitList(v)
			}
		}
		bools := map[string]*bool{"LEGACYEMAILUPDATE": &in.LegacyEmailUpdate, "ALLOWMEMBERS": &in.AllowMembers}
		for k, p := range bools {
			if v := getenv(prefix + k); v != "" {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return fmt.Errorf("%s%s: %q is not a boolean", prefix, k, v)
				}
				*p = b
			}
		}
		c.Instances[name] = in
	}
	return nil
}

// override applies the intake's numeric and duration variables; the
// strings are done with the others in Override.
func (in *Intake) override(getenv func(string) string) error {
	const prefix = "GUESTFLOW_INTAKE_"
	if v := getenv(prefix + "RATE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("%sRATE: %q is not a number", prefix, v)
		}
		in.Rate = f
	}
	if v := getenv(prefix + "BURST"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%sBURST: %q is not a whole number", prefix, v)
		}
		in.Burst = n
	}
	if v := getenv(prefix + "BODYLIMIT"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%sBODYLIMIT: %q is not a whole number of bytes", prefix, v)
		}
		in.BodyLimit = n
	}
	durations := map[string]*time.Duration{
		"READTIMEOUT": &in.ReadTimeout, "READHEADERTIMEOUT": &in.ReadHeaderTimeout,
		"IDLETIMEOUT": &in.IdleTimeout, "PUBLISHTIMEOUT": &in.PublishTimeout,
	}
	for k, p := range durations {
		if v := getenv(prefix + k); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s%s: %q is not a duration such as 30s", prefix, k, v)
			}
			*p = d
		}
	}
	return nil
}

// splitList reads a comma-separated environment value.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// instanceNamesInEnv finds the instance names that GUESTFLOW_INSTANCES_…
// variables mention. Names are lower-cased, as instance keys are.
func instanceNamesInEnv(environ []string) []string {
	seen := map[string]bool{}
	var names []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		rest, ok := strings.CutPrefix(k, "GUESTFLOW_INSTANCES_")
		if !ok {
			continue
		}
		i := strings.LastIndex(rest, "_")
		if i <= 0 {
			continue
		}
		n := strings.ToLower(rest[:i])
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	return names
}
