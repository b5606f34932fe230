package deploy

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

const (
	// natsValuesFile holds the values for the official NATS chart.
	natsValuesFile = "nats-values.yaml"
	// natsAccount is the account the workers' users live in, which the
	// ScaledObjects name.
	natsAccount = "GUESTFLOW"
	// natsMonitorPort is the chart's monitoring port, which the
	// ScaledObjects address.
	natsMonitorPort = 8222
)

// natsValues is the part of the NATS chart's values (chart 2.14.2,
// helm/charts/nats/values.yaml in github.com/nats-io/k8s) that
// nats-values.yaml sets, with the chart's names. Decoding strictly into it
// refuses a key the chart would silently ignore, such as the 0.x chart's
// nats.jetstream.fileStorage; a new key needs its field here, checked
// against the chart's values.yaml.
type natsValues struct {
	Config struct {
		Cluster struct {
			Enabled  bool `json:"enabled"`
			Replicas int  `json:"replicas"`
		} `json:"cluster"`
		JetStream struct {
			Enabled   bool `json:"enabled"`
			FileStore struct {
				Enabled bool   `json:"enabled"`
				Dir     string `json:"dir"`
				PVC     struct {
					Enabled          bool    `json:"enabled"`
					Size             string  `json:"size"`
					StorageClassName *string `json:"storageClassName,omitempty"`
				} `json:"pvc"`
			} `json:"fileStore"`
			MemoryStore struct {
				Enabled bool `json:"enabled"`
			} `json:"memoryStore"`
		} `json:"jetstream"`
		Monitor struct {
			Enabled bool `json:"enabled"`
			Port    int  `json:"port"`
		} `json:"monitor"`
		// Merge is merged into nats.conf as it is: the server's own
		// configuration names.
		Merge struct {
			Accounts map[string]natsAccountConfig `json:"accounts"`
		} `json:"merge"`
	} `json:"config"`
	Container struct {
		Env map[string]struct {
			ValueFrom *corev1.EnvVarSource `json:"valueFrom"`
		} `json:"env"`
		Resources corev1.ResourceRequirements `json:"resources"`
	} `json:"container"`
	Service struct {
		Ports struct {
			Monitor struct {
				Enabled bool `json:"enabled"`
			} `json:"monitor"`
		} `json:"ports"`
	} `json:"service"`
	PromExporter struct {
		Enabled    bool `json:"enabled"`
		Port       int  `json:"port"`
		PodMonitor struct {
			Enabled bool `json:"enabled"`
		} `json:"podMonitor"`
	} `json:"promExporter"`
	PodTemplate struct {
		TopologySpreadConstraints map[string]struct {
			MaxSkew           int    `json:"maxSkew"`
			WhenUnsatisfiable string `json:"whenUnsatisfiable"`
		} `json:"topologySpreadConstraints"`
	} `json:"podTemplate"`
	NatsBox struct {
		Enabled  bool `json:"enabled"`
		Contexts map[string]struct {
			NKey struct {
				SecretName string `json:"secretName"`
				Key        string `json:"key"`
			} `json:"nkey"`
		} `json:"contexts"`
	} `json:"natsBox"`
}

// natsAccountConfig is an account of nats.conf, as far as the values use it.
type natsAccountConfig struct {
	JetStream string     `json:"jetstream"`
	Users     []natsUser `json:"users"`
}

type natsUser struct {
	NKey        string `json:"nkey"`
	Permissions *struct {
		Publish   *natsPermission `json:"publish,omitempty"`
		Subscribe *natsPermission `json:"subscribe,omitempty"`
	} `json:"permissions,omitempty"`
}

type natsPermission struct {
	Allow []string `json:"allow,omitempty"`
	Deny  []string `json:"deny,omitempty"`
}

// chartVariable is the chart's rule for a value it writes unquoted into
// nats.conf ("<< $NAME >>", helm/charts/nats/templates/_helpers.tpl,
// nats.formatConfig), and so a variable the server resolves.
var chartVariable = regexp.MustCompile(`^<<\s+\$([A-Z0-9_]+)\s+>>$`)

// natsUsers are the users nats-values.yaml defines.
var natsUsers = append(append([]string{}, steps...), "intake", "provision", "operator")

// nkeyVariable is the environment variable holding the public key of
// user (a step, intake or operator).
func nkeyVariable(user string) string { return "GUESTFLOW_NKEY_" + strings.ToUpper(user) }

func loadNATSValues(t *testing.T) (*natsValues, []byte) {
	t.Helper()
	y, err := os.ReadFile(natsValuesFile)
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatalf("%s: %v", natsValuesFile, err)
	}
	var v natsValues
	if err := decodeStrict(j, &v); err != nil {
		t.Fatalf("%s: %v", natsValuesFile, err)
	}
	return &v, j
}

// TestNATSValuesSetWhatTheDeploymentReliesOn: a 3-node JetStream cluster on
// file storage, the monitoring port on the Service, the exporter, and a
// user per component whose key comes from the Secret.
func TestNATSValuesSetWhatTheDeploymentReliesOn(t *testing.T) {
	v, _ := loadNATSValues(t)
	c := v.Config
	if !c.Cluster.Enabled || c.Cluster.Replicas != 3 {
		t.Errorf("config.cluster: enabled %t, replicas %d; want a 3-node cluster", c.Cluster.Enabled, c.Cluster.Replicas)
	}
	js := c.JetStream
	if !js.Enabled || !js.FileStore.Enabled || !js.FileStore.PVC.Enabled || js.FileStore.PVC.Size == "" {
		t.Errorf("config.jetstream: want JetStream on a file store on a persistent volume, got %+v", js)
	}
	if js.MemoryStore.Enabled {
		t.Error("config.jetstream.memoryStore: the streams and buckets are file-backed; a memory store only takes the pod's memory")
	}
	if !c.Monitor.Enabled || c.Monitor.Port != natsMonitorPort {
		t.Errorf("config.monitor: enabled %t, port %d; the ScaledObjects read port %d", c.Monitor.Enabled, c.Monitor.Port, natsMonitorPort)
	}
	if !v.Service.Ports.Monitor.Enabled {
		t.Error("service.ports.monitor.enabled: the chart's Service leaves the monitoring port out unless told")
	}
	if !v.PromExporter.Enabled {
		t.Error("promExporter.enabled: want the Prometheus exporter")
	}
	if len(v.PodTemplate.TopologySpreadConstraints) == 0 {
		t.Error("podTemplate.topologySpreadConstraints: the three servers should be on three nodes")
	}
	acc, ok := c.Merge.Accounts[natsAccount]
	if !ok || acc.JetStream != "enabled" {
		t.Fatalf("config.merge.accounts.%s: want the account, with jetstream: enabled", natsAccount)
	}
	users := map[string]bool{}
	for i, u := range acc.Users {
		m := chartVariable.FindStringSubmatch(u.NKey)
		if m == nil {
			t.Errorf("user %d: nkey %q: want << $GUESTFLOW_NKEY_… >>, the public key from the environment", i, u.NKey)
			continue
		}
		env, ok := v.Container.Env[m[1]]
		if !ok || env.ValueFrom == nil || env.ValueFrom.SecretKeyRef == nil || env.ValueFrom.SecretKeyRef.Name != "guestflow-nats-users" {
			t.Errorf("user %d: container.env.%s must come from the Secret guestflow-nats-users", i, m[1])
		}
		users[m[1]] = true
	}
	for _, u := range natsUsers {
		if !users[nkeyVariable(u)] {
			t.Errorf("no NATS user for %s (nkey << $%s >>)", u, nkeyVariable(u))
		}
	}
}

// TestNATSValuesRefuseMisspeltKeys proves the strict decoding above fails
// on a key the chart does not have.
func TestNATSValuesRefuseMisspeltKeys(t *testing.T) {
	y, err := os.ReadFile(natsValuesFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, typo := range [][2]string{
		{"    fileStore:\n", "    fileStorage:\n"},
		{"  monitor:\n    enabled: true", "  monitor:\n    enable: true"},
		{"promExporter:", "promexporter:"},
	} {
		broken := bytes.Replace(y, []byte(typo[0]), []byte(typo[1]), 1)
		if bytes.Equal(broken, y) {
			t.Fatalf("%q is not in %s", typo[0], natsValuesFile)
		}
		j, err := yaml.YAMLToJSON(broken)
		if err != nil {
			t.Fatal(err)
		}
		if err := decodeStrict(j, &natsValues{}); err == nil {
			t.Errorf("%q was accepted", strings.TrimSpace(typo[1]))
		}
	}
}

// TestNATSValuesMatchTheREADME: each user's permissions in nats-values.yaml
// are exactly what the README's "NATS permissions" tables grant it, the
// tables e2e/security_test.go holds the workers to. A step's replies are on
// its own inbox prefix (inboxOf), which the table's `_INBOX.>` row allows.
func TestNATSValuesMatchTheREADME(t *testing.T) {
	lines, ok := readmeSection(t, "NATS permissions")
	if !ok {
		t.Skip(`../README.md has no "NATS permissions" section to compare with`)
	}
	want := map[string]map[string][]string{} // user → publish/subscribe → subjects
	add := func(user, kind, subject string) {
		if want[user] == nil {
			want[user] = map[string][]string{}
		}
		want[user][kind] = append(want[user][kind], subject)
	}
	stepTable := false
	for _, l := range lines {
		cells := tableCells(l)
		switch {
		case l == "| permission | invite | license | role | notify | for |":
			stepTable = true
		case len(cells) == 0 || strings.HasPrefix(l, "|---"):
			if len(cells) == 0 {
				stepTable = false
			}
		case stepTable:
			m := regexp.MustCompile("^(publish|subscribe) `([^`]+)`$").FindStringSubmatch(cells[0])
			if m == nil || len(cells) != 6 {
				t.Fatalf("README: not a permission row: %s", l)
			}
			for i, step := range steps {
				if cells[1+i] != "✓" {
					continue
				}
				s := strings.NewReplacer("<step>", step, "<in>", stepIO[step][0], "<out>", stepIO[step][1]).Replace(m[2])
				if rest, ok := strings.CutPrefix(s, "_INBOX."); ok {
					s = inboxOf(step) + "." + rest
				}
				add(step, m[1], s)
			}
		case len(cells) == 3 && cells[0] == "`guestflow provision`":
			subjects, each := backticked(cells[1]), []string{}
			for _, s := range subjects {
				if regexp.MustCompile(`^(KV_)?GUESTFLOW[A-Z_]*$`).MatchString(s) {
					each = append(each, s)
				}
			}
			for _, s := range subjects {
				switch {
				case s == "<s>": // "for each `<s>` of …"
				case strings.Contains(s, "<s>"):
					for _, e := range each {
						add("provision", "publish", strings.ReplaceAll(s, "<s>", e))
					}
				case !slices.Contains(each, s):
					add("provision", "publish", s)
				}
			}
			for _, s := range backticked(cells[2]) {
				add("provision", "subscribe", s)
			}
		case len(cells) == 3 && strings.HasPrefix(cells[0], "an HR system"):
			for _, s := range backticked(cells[1]) {
				add("intake", "publish", s)
			}
			for _, s := range backticked(cells[2]) {
				add("intake", "subscribe", s)
			}
		}
	}
	for _, u := range append(append([]string{}, steps...), "provision", "intake") {
		if len(want[u]["publish"]) == 0 {
			t.Fatalf("README: found no permissions for %s; has the table changed shape?", u)
		}
	}
	v, _ := loadNATSValues(t)
	for _, u := range v.Config.Merge.Accounts[natsAccount].Users {
		m := chartVariable.FindStringSubmatch(u.NKey)
		if m == nil {
			continue
		}
		user := strings.ToLower(strings.TrimPrefix(m[1], "GUESTFLOW_NKEY_"))
		w, ok := want[user]
		if !ok {
			if u.Permissions != nil {
				t.Errorf("%s: the README grants it nothing narrower than the whole account; nats-values.yaml restricts it", user)
			}
			continue
		}
		if u.Permissions == nil || u.Permissions.Publish == nil || u.Permissions.Subscribe == nil {
			t.Errorf("%s: no publish and subscribe permissions", user)
			continue
		}
		for kind, have := range map[string]*natsPermission{"publish": u.Permissions.Publish, "subscribe": u.Permissions.Subscribe} {
			if len(have.Deny) > 0 {
				t.Errorf("%s: %s deny %v: the README's tables allow, they do not deny", user, kind, have.Deny)
			}
			got, exp := slices.Sorted(slices.Values(have.Allow)), slices.Sorted(slices.Values(w[kind]))
			if !slices.Equal(got, exp) {
				t.Errorf("%s: %s allows\n  %v\nthe README grants\n  %v", user, kind, got, exp)
			}
		}
	}
}

var backtick = regexp.MustCompile("`([^`]+)`")

func backticked(s string) []string {
	var out []string
	for _, m := range backtick.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// readmeSection returns the lines of ../README.md's section headed title,
// and whether there is one.
func readmeSection(t *testing.T, title string) ([]string, bool) {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in, found := false, false
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "#") {
			in = strings.TrimLeft(l, "# ") == title
			found = found || in
			continue
		}
		if in {
			out = append(out, l)
		}
	}
	return out, found
}

// tableCells are the trimmed cells of a Markdown table row (none for any
// other line).
func tableCells(l string) []string {
	l = strings.TrimSpace(l)
	if !strings.HasPrefix(l, "|") || !strings.HasSuffix(l, "|") || len(l) < 2 {
		return nil
	}
	cells := strings.Split(l[1:len(l)-1], "|")
	for i := range cells {
		cells[i] = strings.TrimSpace(cells[i])
	}
	return cells
}
