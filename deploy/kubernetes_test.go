package deploy

import (
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// TestOverlaysMeetThePolicy checks every overlay against the policy in
// policy_test.go.
func TestOverlaysMeetThePolicy(t *testing.T) {
	for _, o := range overlays {
		t.Run(o, func(t *testing.T) {
			for _, p := range checkOverlay(o, mustRender(t, overlayDir(o))) {
				t.Error(p)
			}
		})
	}
}

// TestOverlaysDifferFromTheBase: each overlay must bring its own
// configuration and app registration, not ship the base's placeholders.
func TestOverlaysDifferFromTheBase(t *testing.T) {
	base := mustRender(t, "kubernetes/base")
	var baseCM string
	for name := range base.configMaps {
		baseCM = name
	}
	for _, o := range overlays {
		m := mustRender(t, overlayDir(o))
		if _, same := m.configMaps[baseCM]; same {
			t.Errorf("%s: ConfigMap %s is the base's: the overlay must replace guestflow.yaml with its tenant's", o, baseCM)
		}
		key := "azure.workload.identity/client-id"
		if got := m.serviceAccounts["guestflow"].Annotations[key]; got == base.serviceAccounts["guestflow"].Annotations[key] {
			t.Errorf("%s: %s is the base's placeholder %s", o, key, got)
		}
	}
}

// TestPolicyFindsBrokenManifests breaks a freshly rendered production
// overlay in one way at a time and expects the policy to say so: each
// check above can fail.
func TestPolicyFindsBrokenManifests(t *testing.T) {
	cases := []struct {
		name  string
		spoil func(m *manifests)
		want  string
	}{
		{"replicas on a scaled Deployment", func(m *manifests) {
			m.deployments["guestflow-invite"].Spec.Replicas = ptr.To[int32](2)
		}, "sets spec.replicas"},
		{"no ScaledObject", func(m *manifests) { delete(m.scaledObjects, "guestflow-role") }, "step role needs a Deployment, a ScaledObject and a PodDisruptionBudget"},
		{"no PodDisruptionBudget", func(m *manifests) { delete(m.pdbs, "guestflow-notify") }, "step notify needs"},
		{"budget selecting nothing", func(m *manifests) {
			m.pdbs["guestflow-notify"].Spec.Selector.MatchLabels["app.kubernetes.io/component"] = "other"
		}, "PodDisruptionBudget guestflow-notify does not select"},
		{"root allowed", func(m *manifests) {
			m.deployments["guestflow-license"].Spec.Template.Spec.SecurityContext.RunAsNonRoot = nil
		}, "runAsNonRoot must be true"},
		{"user 0", func(m *manifests) {
			m.deployments["guestflow-license"].Spec.Template.Spec.SecurityContext.RunAsUser = ptr.To[int64](0)
		}, "runAsUser must be a non-zero"},
		{"writable root", func(m *manifests) {
			m.deployments["guestflow-role"].Spec.Template.Spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem = ptr.To(false)
		}, "readOnlyRootFilesystem must be true"},
		{"capabilities kept", func(m *manifests) {
			m.deployments["guestflow-role"].Spec.Template.Spec.Containers[0].SecurityContext.Capabilities.Drop = nil
		}, "capabilities must drop ALL"},
		{"escalation", func(m *manifests) {
			m.deployments["guestflow-role"].Spec.Template.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil
		}, "allowPrivilegeEscalation must be false"},
		{"no seccomp", func(m *manifests) {
			m.deployments["guestflow-invite"].Spec.Template.Spec.SecurityContext.SeccompProfile = nil
		}, "seccompProfile.type must be RuntimeDefault"},
		{"short grace period", func(m *manifests) {
			m.deployments["guestflow-invite"].Spec.Template.Spec.TerminationGracePeriodSeconds = ptr.To[int64](25)
		}, "terminationGracePeriodSeconds 25s must exceed --drain-timeout 25s"},
		{"drain longer than grace", func(m *manifests) {
			c := &m.deployments["guestflow-invite"].Spec.Template.Spec.Containers[0]
			c.Args = replaceArg(c.Args, "--drain-timeout", "--drain-timeout=60s")
		}, "must exceed --drain-timeout 1m0s"},
		{"default drain timeout", func(m *manifests) {
			s := &m.deployments["guestflow-invite"].Spec.Template.Spec
			s.TerminationGracePeriodSeconds = ptr.To[int64](29)
			s.Containers[0].Args = replaceArg(s.Containers[0].Args, "--drain-timeout", "")
		}, "terminationGracePeriodSeconds 29s must exceed --drain-timeout 25s"},
		{"probe elsewhere", func(m *manifests) {
			m.deployments["guestflow-notify"].Spec.Template.Spec.Containers[0].LivenessProbe.HTTPGet.Port = intstr.FromInt32(8080)
		}, "liveness probe is /livez on port 8080"},
		{"no readiness probe", func(m *manifests) {
			m.deployments["guestflow-notify"].Spec.Template.Spec.Containers[0].ReadinessProbe = nil
		}, "needs an HTTP readiness probe"},
		{"ops on loopback", func(m *manifests) {
			c := &m.deployments["guestflow-notify"].Spec.Template.Spec.Containers[0]
			c.Args = replaceArg(c.Args, "--ops-addr", "--ops-addr=127.0.0.1:9464")
		}, "is loopback"},
		{"unpinned image", func(m *manifests) {
			m.deployments["guestflow-invite"].Spec.Template.Spec.Containers[0].Image = "guestflow"
		}, "is not pinned"},
		{"latest", func(m *manifests) {
			m.deployments["guestflow-invite"].Spec.Template.Spec.Containers[0].Image = "ghcr.io/guestflow/guestflow:latest"
		}, "latest is not a pinned version"},
		{"production without digest", func(m *manifests) {
			m.deployments["guestflow-invite"].Spec.Template.Spec.Containers[0].Image = "ghcr.io/guestflow/guestflow:v0.1.0"
		}, "production pins the image by digest"},
		{"no resources", func(m *manifests) {
			m.deployments["guestflow-invite"].Spec.Template.Spec.Containers[0].Resources.Requests = nil
		}, "resources need cpu and memory requests"},
		{"plain ConfigMap", func(m *manifests) {
			for _, v := range m.deployments["guestflow-invite"].Spec.Template.Spec.Volumes {
				if v.ConfigMap != nil {
					m.configMaps[configMapName] = m.configMaps[v.ConfigMap.Name]
					v.ConfigMap.Name = configMapName
				}
			}
		}, "is not the generated guestflow-config-<hash>"},
		{"another step's seed", func(m *manifests) {
			for _, v := range m.deployments["guestflow-invite"].Spec.Template.Spec.Volumes {
				if v.Secret != nil {
					v.Secret.SecretName = "guestflow-nats-notify"
				}
			}
		}, "must be nkey.seed in the mounted Secret guestflow-nats-invite"},
		{"shared inbox", func(m *manifests) {
			m.deployments["guestflow-role"].Spec.Template.Spec.Containers[0].Env = nil
		}, `GUESTFLOW_NATS_INBOXPREFIX is "", want _INBOX_guestflow_role`},
		{"no workload identity", func(m *manifests) {
			delete(m.deployments["guestflow-role"].Spec.Template.Labels, "azure.workload.identity/use")
		}, "azure.workload.identity/use must be"},
		{"no client id", func(m *manifests) {
			delete(m.serviceAccounts["guestflow"].Annotations, "azure.workload.identity/client-id")
		}, "azure.workload.identity/client-id must be"},
		{"no spread", func(m *manifests) {
			m.deployments["guestflow-role"].Spec.Template.Spec.TopologySpreadConstraints = nil
		}, "no topologySpreadConstraints"},
		{"misspelt trigger parameter", func(m *manifests) {
			md := m.scaledObjects["guestflow-invite"].Spec.Triggers[0].Metadata
			md["lagThreshhold"] = md["lagThreshold"]
		}, `"lagThreshhold" is not a parameter`},
		{"no stream", func(m *manifests) {
			delete(m.scaledObjects["guestflow-invite"].Spec.Triggers[0].Metadata, "stream")
		}, `"stream" is required`},
		{"no account", func(m *manifests) {
			delete(m.scaledObjects["guestflow-invite"].Spec.Triggers[0].Metadata, "account")
		}, "needs account or accountID"},
		{"another account", func(m *manifests) {
			m.scaledObjects["guestflow-invite"].Spec.Triggers[0].Metadata["account"] = "$G"
		}, `account "$G", but the workers' users are in account GUESTFLOW`},
		{"another step's consumer", func(m *manifests) {
			m.scaledObjects["guestflow-invite"].Spec.Triggers[0].Metadata["consumer"] = "license"
		}, "consumer invite"},
		{"activation above zero", func(m *manifests) {
			m.scaledObjects["guestflow-invite"].Spec.Triggers[0].Metadata["activationLagThreshold"] = "5"
		}, "would leave up to 5 onboardings waiting"},
		{"the ClusterIP Service", func(m *manifests) {
			m.scaledObjects["guestflow-invite"].Spec.Triggers[0].Metadata["natsServerMonitoringEndpoint"] = "nats.nats.svc:8222"
		}, "must be the NATS chart's headless Service"},
		{"the client port", func(m *manifests) {
			m.scaledObjects["guestflow-invite"].Spec.Triggers[0].Metadata["natsServerMonitoringEndpoint"] = "nats-headless.nats.svc.cluster.local:4222"
		}, "port 4222, but nats-values.yaml serves monitoring on 8222"},
		{"not to zero", func(m *manifests) {
			m.scaledObjects["guestflow-invite"].Spec.MinReplicaCount = ptr.To[int32](1)
		}, "minReplicaCount must be 0"},
		{"egress to a database", func(m *manifests) {
			np := m.networkPolicies["guestflow-workers"]
			np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{
				Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromInt32(5432))}},
			})
		}, "connect to TCP 5432"},
		{"egress anywhere", func(m *manifests) {
			np := m.networkPolicies["guestflow-workers"]
			np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{})
		}, "connect on any port"},
		{"NATS anywhere", func(m *manifests) {
			np := m.networkPolicies["guestflow-workers"]
			np.Spec.Egress[0].To = nil
		}, "reach port 4222 anywhere"},
		{"ingress from anywhere", func(m *manifests) {
			np := m.networkPolicies["guestflow-workers"]
			np.Spec.Ingress[0].From = []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}}}
		}, "from outside the monitoring namespace"},
		{"no default deny", func(m *manifests) { delete(m.networkPolicies, "default-deny") }, "no default-deny NetworkPolicy"},
		{"namespace not restricted", func(m *manifests) {
			m.namespaces[namespace].Labels["pod-security.kubernetes.io/enforce"] = "baseline"
		}, `enforce is "baseline", want restricted`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := render(overlayDir("production"))
			if err != nil {
				t.Fatal(err)
			}
			c.spoil(m)
			got := checkOverlay("production", m)
			for _, p := range got {
				if strings.Contains(p, c.want) {
					return
				}
			}
			t.Errorf("no problem says %q; got %q", c.want, got)
		})
	}
}

// replaceArg replaces the argument that starts with flag by with (none
// when with is empty).
func replaceArg(args []string, flag, with string) []string {
	var out []string
	for _, a := range args {
		if strings.HasPrefix(a, flag) {
			if with != "" {
				out = append(out, with)
			}
			continue
		}
		out = append(out, a)
	}
	return out
}
