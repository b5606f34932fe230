package deploy

import (
	"bytes"
	"os"
	"regexp"
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
	for _, u := range append(append([]string{}, steps...), "intake", "operator") {
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
