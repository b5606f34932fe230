package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guestflow/guestflow/internal/config"
)

const valid = `
tenant:
  id: 6a1b2c3d-0000-4000-8000-00000000d365
  caFile: ca.pem
notify:
  sender: onboarding@contoso.com
instances:
  sales:
    url: https://contoso-sales.crm4.dynamics.com/
    securityGroupId: 6f1c0000-0000-4000-8000-000000000001
    license: DYN365_ENTERPRISE_SALES
    roles: [Salesperson]
`

func write(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "guestflow.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadDefaultsAndRelativeCA(t *testing.T) {
	p := write(t, valid)
	c, err := config.Load(p, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.NATS.URL != config.DefaultNATSURL || c.Tenant.GraphURL != config.DefaultGraphURL || c.Tenant.AuthorityHost != config.DefaultAuthorityHost {
		t.Errorf("defaults not filled: %+v", c)
	}
	if c.Tenant.CAFile != filepath.Join(filepath.Dir(p), "ca.pem") {
		t.Errorf("caFile %q is not resolved against the config's folder", c.Tenant.CAFile)
	}
	if got := c.Instances["sales"].URL; got != "https://contoso-sales.crm4.dynamics.com" {
		t.Errorf("instance URL %q keeps its trailing slash", got)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	c, err := config.Load(write(t, valid), true, []string{
		"GUESTFLOW_NATS_URL=nats://10.0.0.1:4222",
		"GUESTFLOW_TENANT_GRAPHURL=https://graph.example",
		"GUESTFLOW_INSTANCES_SALES_ROLES=Salesperson, Sales Manager",
		"GUESTFLOW_INSTANCES_SERVICE_URL=https://contoso-service.crm4.dynamics.com",
		"GUESTFLOW_INSTANCES_SERVICE_LICENSE=DYN365_ENTERPRISE_CUSTOMER_SERVICE",
		"GUESTFLOW_INSTANCES_SERVICE_ROLES=Customer Service Representative",
		"GUESTFLOW_INSTANCES_SERVICE_LEGACYEMAILUPDATE=true",
		"OTHER=ignored",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.NATS.URL != "nats://10.0.0.1:4222" || c.Tenant.GraphURL != "https://graph.example" {
		t.Errorf("overrides not applied: %+v", c)
	}
	if got := c.Instances["sales"].Roles; len(got) != 2 || got[1] != "Sales Manager" {
		t.Errorf("roles %q", got)
	}
	if s := c.Instances["service"]; !s.LegacyEmailUpdate || s.License != "DYN365_ENTERPRISE_CUSTOMER_SERVICE" {
		t.Errorf("an instance made from the environment: %+v", s)
	}
}

func TestEveryProblemIsReported(t *testing.T) {
	_, err := config.Load(write(t, `
tenant:
  graphURL: http://graph.example
instances:
  sales:
    url: contoso.crm4.dynamics.com
`), true, nil)
	if err == nil {
		t.Fatal("an invalid config loaded")
	}
	for _, want := range []string{"tenant.id", "tenant.graphURL", "notify.sender", "instances.sales.url", "instances.sales.license", "instances.sales.roles"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s:\n%v", want, err)
		}
	}
}

func TestUnknownKeyIsAnError(t *testing.T) {
	_, err := config.Load(write(t, valid+"    securityGroup: typo\n"), true, nil)
	if err == nil || !strings.Contains(err.Error(), "securityGroup") {
		t.Errorf("a misspelt key must be an error, got %v", err)
	}
	if _, err := config.Load(filepath.Join(t.TempDir(), "missing.yaml"), true, nil); err == nil {
		t.Error("a missing file named by --config must be an error")
	}
}

// TestIntakeKeys reads the intake section, resolves its files against the
// configuration's folder, and lets GUESTFLOW_INTAKE_… variables win.
func TestIntakeKeys(t *testing.T) {
	p := write(t, valid+`
intake:
  listen: 0.0.0.0:8088
  tokensFile: tokens
  hmacSecretFile: /etc/guestflow/hmac
  rate: 20
  burst: 40
  readTimeout: 10s
`)
	c, err := config.LoadUnvalidated(p, true, []string{
		"GUESTFLOW_INTAKE_BURST=80",
		"GUESTFLOW_INTAKE_PUBLISHTIMEOUT=3s",
		"GUESTFLOW_INTAKE_CLIENTCA=ca.pem",
	})
	if err != nil {
		t.Fatal(err)
	}
	in := c.Intake
	if in.Listen != "0.0.0.0:8088" || in.Rate != 20 || in.ReadTimeout != 10*time.Second {
		t.Errorf("keys not read: %+v", in)
	}
	if in.TokensFile != filepath.Join(filepath.Dir(p), "tokens") || in.HMACSecretFile != "/etc/guestflow/hmac" {
		t.Errorf("files not resolved against the config's folder: %q, %q", in.TokensFile, in.HMACSecretFile)
	}
	if in.Burst != 80 || in.PublishTimeout != 3*time.Second || in.ClientCA != "ca.pem" {
		t.Errorf("environment not applied (a variable's path is taken as given): %+v", in)
	}
	for _, bad := range []string{"GUESTFLOW_INTAKE_RATE=fast", "GUESTFLOW_INTAKE_BURST=1.5", "GUESTFLOW_INTAKE_IDLETIMEOUT=10"} {
		if _, err := config.LoadUnvalidated(p, true, []string{bad}); err == nil || !strings.Contains(err.Error(), strings.SplitN(bad, "=", 2)[0]) {
			t.Errorf("%s: error %v does not name the variable", bad, err)
		}
	}
}
