package deploy

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/guestflow/guestflow/deploy/internal/kedav1alpha1"
)

// The policy the manifests promise (docs/deploy.md). Each check returns
// the problems it found, one sentence each; policy_test's tests feed them
// the rendered overlays (which must have none) and broken copies (which
// must have the problem named).

// steps are guestflow's workers, one Deployment, ScaledObject and
// PodDisruptionBudget each.
var steps = []string{"invite", "license", "role", "notify"}

const (
	namespace = "guestflow"
	// opsPort is where --ops-addr serves /livez, /readyz and /metrics.
	opsPort = 9464
	// defaultDrainTimeout is `guestflow worker --drain-timeout`'s default.
	defaultDrainTimeout = 25 * time.Second
	// drainMargin is what the grace period must leave beyond the drain
	// timeout: the worker then hands back the inputs still running and
	// closes its connection, before the kubelet's SIGKILL.
	drainMargin = 5 * time.Second
	// baseImage is the image name in the base, which every overlay must
	// replace with a pinned one through kustomize's images:.
	baseImage = "guestflow"
	// configMapName is the configMapGenerator's name, before the hash.
	configMapName = "guestflow-config"
)

// inboxOf is the inbox prefix of step's NATS user.
func inboxOf(step string) string { return "_INBOX_guestflow_" + step }

type problems []string

func (p *problems) addf(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// checkOverlay is every check, on one rendered overlay.
func checkOverlay(overlay string, m *manifests) problems {
	var p problems
	p = append(p, checkNamespace(m)...)
	for _, step := range steps {
		name := "guestflow-" + step
		d, so, pdb := m.deployments[name], m.scaledObjects[name], m.pdbs[name]
		if d == nil || so == nil || pdb == nil {
			p.addf("step %s needs a Deployment, a ScaledObject and a PodDisruptionBudget named %s (have %t, %t, %t)", step, name, d != nil, so != nil, pdb != nil)
			continue
		}
		p = append(p, checkScaledObject(step, so, d)...)
		p = append(p, checkPDB(pdb.Spec.Selector, d)...)
		p = append(p, checkStepConfig(step, d, m)...)
	}
	for _, so := range m.scaledObjects {
		if d := m.deployments[so.Spec.ScaleTargetRef.Name]; d != nil && d.Spec.Replicas != nil {
			p.addf("Deployment %s sets spec.replicas (%d), but ScaledObject %s scales it: leave replicas to KEDA, or every apply resets them", d.Name, *d.Spec.Replicas, so.Name)
		}
	}
	for _, d := range m.deployments {
		p = append(p, checkPodSecurity(d.Name, d.Spec.Template.Spec)...)
		p = append(p, checkContainers(overlay, d)...)
		p = append(p, checkWorkloadIdentity(d, m)...)
		p = append(p, checkTopologySpread(d)...)
		p = append(p, checkNetworkPolicies(d, m)...)
	}
	return p
}

func checkNamespace(m *manifests) problems {
	var p problems
	ns := m.namespaces[namespace]
	if ns == nil {
		p.addf("no Namespace %s", namespace)
		return p
	}
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		p.addf("Namespace %s: label pod-security.kubernetes.io/enforce is %q, want restricted", namespace, got)
	}
	for id, ns := range m.namespaceOf {
		if !strings.HasPrefix(id, "Namespace/") && ns != namespace {
			p.addf("%s is in namespace %q, want %s", id, ns, namespace)
		}
	}
	return p
}

// natsJetStreamParams are the trigger metadata keys KEDA's nats-jetstream
// scaler reads (the keda:"name=…" tags of natsJetStreamMetadata in
// pkg/scalers/nats_jetstream_scaler.go, KEDA v2.20.2), and whether each is
// required. account and accountID are each optional, but one of them is
// required ("no account name or id given").
var natsJetStreamParams = map[string]bool{
	"account":                      false,
	"accountID":                    false,
	"stream":                       true,
	"consumer":                     true,
	"lagThreshold":                 false, // default 10
	"activationLagThreshold":       false, // default 0
	"useHttps":                     false, // default false
	"natsServerMonitoringEndpoint": true,
}

// monitoringEndpoint is what the ScaledObjects must address: the NATS
// chart's headless Service (see checkScaledObject).
var monitoringEndpoint = regexp.MustCompile(`^([a-z0-9-]+)-headless\.([a-z0-9-]+)\.svc(\.[a-z0-9.-]+)?$`)

func checkScaledObject(step string, so *kedav1alpha1.ScaledObject, d *appsv1.Deployment) problems {
	var p problems
	ref := so.Spec.ScaleTargetRef
	if ref == nil || ref.Name != d.Name || (ref.Kind != "" && ref.Kind != "Deployment") {
		p.addf("ScaledObject %s must target Deployment %s", so.Name, d.Name)
	}
	minR, maxR := so.Spec.MinReplicaCount, so.Spec.MaxReplicaCount
	if minR == nil || *minR != 0 {
		p.addf("ScaledObject %s: minReplicaCount must be 0, so the step scales to zero between onboardings", so.Name)
	}
	if maxR == nil || *maxR < 1 {
		p.addf("ScaledObject %s: maxReplicaCount must be at least 1", so.Name)
	}
	if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "nats-jetstream" {
		p.addf("ScaledObject %s: want exactly one trigger, of type nats-jetstream", so.Name)
		return p
	}
	tr := so.Spec.Triggers[0]
	md := tr.Metadata
	for k := range md {
		if _, ok := natsJetStreamParams[k]; !ok {
			p.addf("ScaledObject %s: trigger metadata %q is not a parameter of KEDA's nats-jetstream scaler", so.Name, k)
		}
	}
	for k, required := range natsJetStreamParams {
		if required && md[k] == "" && tr.AuthenticationRef == nil {
			p.addf("ScaledObject %s: trigger metadata %q is required", so.Name, k)
		}
	}
	if md["account"] == "" && md["accountID"] == "" {
		p.addf("ScaledObject %s: trigger metadata needs account or accountID", so.Name)
	}
	if md["stream"] != "GUESTFLOW" || md["consumer"] != step {
		p.addf("ScaledObject %s: trigger must read stream GUESTFLOW, consumer %s (the step's durable consumer); has %q, %q", so.Name, step, md["stream"], md["consumer"])
	}
	lag, err := strconv.ParseInt(md["lagThreshold"], 10, 64)
	if err != nil || lag < 1 {
		p.addf("ScaledObject %s: lagThreshold %q must be a whole number of at least 1", so.Name, md["lagThreshold"])
	}
	act, err := strconv.ParseInt(md["activationLagThreshold"], 10, 64)
	if err != nil || act < 0 {
		p.addf("ScaledObject %s: activationLagThreshold %q must be a whole number of at least 0", so.Name, md["activationLagThreshold"])
	} else if minR != nil && *minR == 0 && act != 0 {
		// KEDA wakes a scaled-to-zero Deployment when lag > activation.
		p.addf("ScaledObject %s: activationLagThreshold %d would leave up to %d onboardings waiting at zero replicas until more arrived; use 0", so.Name, act, act)
	}
	if v, ok := md["useHttps"]; ok {
		if _, err := strconv.ParseBool(v); err != nil {
			p.addf("ScaledObject %s: useHttps %q is not a boolean", so.Name, v)
		}
	}
	// In a cluster, the scaler asks the endpoint's /varz for the route URLs
	// and then asks each node for /jsz at "<node>.<endpoint>" (or at the
	// host of its advertised client URL): only the chart's headless
	// Service, <release>-headless, gives each pod such a name, and only it
	// serves the monitoring port without values to say so.
	host, port, err := net.SplitHostPort(md["natsServerMonitoringEndpoint"])
	if err != nil || !monitoringEndpoint.MatchString(host) {
		p.addf("ScaledObject %s: natsServerMonitoringEndpoint %q must be the NATS chart's headless Service, <release>-headless.<namespace>.svc[.cluster.local]:<monitor port>", so.Name, md["natsServerMonitoringEndpoint"])
	} else if port != strconv.Itoa(natsMonitorPort) {
		p.addf("ScaledObject %s: natsServerMonitoringEndpoint port %s, but nats-values.yaml serves monitoring on %d", so.Name, port, natsMonitorPort)
	}
	if md["account"] != "" && md["account"] != natsAccount {
		p.addf("ScaledObject %s: account %q, but the workers' users are in account %s (nats-values.yaml)", so.Name, md["account"], natsAccount)
	}
	return p
}

// checkPDB wants a budget whose selector picks d's pods and that lets one
// of them go: minAvailable would block every drain of a one-replica step.
func checkPDB(sel *metav1.LabelSelector, d *appsv1.Deployment) problems {
	var p problems
	if !selects(sel, d.Spec.Template.Labels) {
		p.addf("PodDisruptionBudget %s does not select the pods of Deployment %s", d.Name, d.Name)
	}
	return p
}

func selects(sel *metav1.LabelSelector, l map[string]string) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && !s.Empty() && s.Matches(labels.Set(l))
}

// restrictedVolumes are the volume types Pod Security's restricted profile
// allows.
var restrictedVolumes = func(v corev1.Volume) bool {
	s := v.VolumeSource
	return s.ConfigMap != nil || s.Secret != nil || s.EmptyDir != nil || s.Projected != nil ||
		s.DownwardAPI != nil || s.PersistentVolumeClaim != nil || s.CSI != nil || s.Ephemeral != nil
}

// checkPodSecurity is Pod Security's restricted profile, plus a read-only
// root file system.
func checkPodSecurity(name string, spec corev1.PodSpec) problems {
	var p problems
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		p.addf("%s: host namespaces are not allowed", name)
	}
	for _, v := range spec.Volumes {
		if !restrictedVolumes(v) {
			p.addf("%s: volume %s is of a type the restricted profile refuses", name, v.Name)
		}
	}
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		p.addf("%s: pod securityContext.runAsNonRoot must be true", name)
	}
	if psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		p.addf("%s: pod securityContext.runAsUser must be a non-zero user id", name)
	}
	podSeccomp := psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault
	if !podSeccomp {
		p.addf("%s: pod securityContext.seccompProfile.type must be RuntimeDefault", name)
	}
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		sc := c.SecurityContext
		if sc == nil {
			p.addf("%s/%s: no securityContext", name, c.Name)
			continue
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			p.addf("%s/%s: allowPrivilegeEscalation must be false", name, c.Name)
		}
		if sc.Privileged != nil && *sc.Privileged {
			p.addf("%s/%s: privileged", name, c.Name)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			p.addf("%s/%s: capabilities must drop ALL and add none", name, c.Name)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			p.addf("%s/%s: readOnlyRootFilesystem must be true", name, c.Name)
		}
		if sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot || sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			p.addf("%s/%s: runs as root", name, c.Name)
		}
		if sc.SeccompProfile != nil && sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			p.addf("%s/%s: seccompProfile.type must be RuntimeDefault", name, c.Name)
		}
	}
	return p
}

var (
	digest = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)
	tagged = regexp.MustCompile(`^[^@]+/[^@/]+:([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})(@.*)?$`)
)

// checkContainers: a pinned image, resources, probes on the ops port, and
// (for workers) a grace period beyond the drain timeout.
func checkContainers(overlay string, d *appsv1.Deployment) problems {
	var p problems
	spec := d.Spec.Template.Spec
	for _, c := range spec.Containers {
		id := d.Name + "/" + c.Name
		switch m := tagged.FindStringSubmatch(c.Image); {
		case c.Image == baseImage || m == nil:
			p.addf("%s: image %q is not pinned: the overlay must set it with kustomize images: (a registry, a version tag and, in production, a digest)", id, c.Image)
		case m[1] == "latest":
			p.addf("%s: image %q: latest is not a pinned version", id, c.Image)
		case overlay == "production" && !digest.MatchString(c.Image):
			p.addf("%s: image %q: production pins the image by digest (@sha256:…)", id, c.Image)
		}
		req, lim := c.Resources.Requests, c.Resources.Limits
		if req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() {
			p.addf("%s: resources need cpu and memory requests and a memory limit", id)
		} else if lim.Memory().Cmp(*req.Memory()) < 0 {
			p.addf("%s: memory limit below its request", id)
		}
		p = append(p, checkProbes(id, c)...)
		if len(c.Args) > 0 && c.Args[0] == "worker" {
			drain, err := drainTimeout(c.Args)
			if err != nil {
				p.addf("%s: %v", id, err)
				continue
			}
			grace := 30 * time.Second // Kubernetes' default
			if spec.TerminationGracePeriodSeconds != nil {
				grace = time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
			}
			if grace < drain+drainMargin {
				p.addf("%s: terminationGracePeriodSeconds %s must exceed --drain-timeout %s by at least %s, or the kubelet kills the worker before it hands its inputs back", id, grace, drain, drainMargin)
			}
		}
	}
	return p
}

// drainTimeout is the worker's --drain-timeout, from its arguments or the
// default.
func drainTimeout(args []string) (time.Duration, error) {
	v, ok := flagValue(args, "--drain-timeout")
	if !ok {
		return defaultDrainTimeout, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("--drain-timeout %q: %v", v, err)
	}
	return d, nil
}

// flagValue finds --name=value or --name value in args.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

// checkProbes wants liveness on /livez and readiness on /readyz, both on
// the port --ops-addr listens on, which must not be loopback (the kubelet
// probes the pod's address).
func checkProbes(id string, c corev1.Container) problems {
	var p problems
	addr, ok := flagValue(c.Args, "--ops-addr")
	if !ok {
		p.addf("%s: no --ops-addr: the ops server (probes, metrics) listens on loopback by default, where the kubelet cannot reach it", id)
		return p
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != strconv.Itoa(opsPort) {
		p.addf("%s: --ops-addr %q must listen on port %d", id, addr, opsPort)
		return p
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		p.addf("%s: --ops-addr %q is loopback; the kubelet cannot probe it", id, addr)
	}
	for _, pr := range []struct {
		kind, path string
		probe      *corev1.Probe
	}{{"liveness", "/livez", c.LivenessProbe}, {"readiness", "/readyz", c.ReadinessProbe}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			p.addf("%s: needs an HTTP %s probe on %s", id, pr.kind, pr.path)
			continue
		}
		g := pr.probe.HTTPGet
		if g.Path != pr.path || portNumber(c, g.Port) != opsPort {
			p.addf("%s: %s probe is %s on port %s, want %s on the ops port %d", id, pr.kind, g.Path, g.Port.String(), pr.path, opsPort)
		}
	}
	return p
}

func portNumber(c corev1.Container, port intstr.IntOrString) int {
	if port.Type == intstr.Int {
		return port.IntValue()
	}
	for _, cp := range c.Ports {
		if cp.Name == port.StrVal {
			return int(cp.ContainerPort)
		}
	}
	return 0
}

var uuid = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// checkWorkloadIdentity wants the label Azure workload identity's webhook
// looks for, and a service account naming the app registration.
func checkWorkloadIdentity(d *appsv1.Deployment, m *manifests) problems {
	var p problems
	spec := d.Spec.Template.Spec
	if d.Spec.Template.Labels["azure.workload.identity/use"] != "true" {
		p.addf("%s: pod label azure.workload.identity/use must be \"true\"", d.Name)
	}
	sa := m.serviceAccounts[spec.ServiceAccountName]
	if sa == nil {
		p.addf("%s: service account %q is not in the manifests", d.Name, spec.ServiceAccountName)
	} else if !uuid.MatchString(sa.Annotations["azure.workload.identity/client-id"]) {
		p.addf("ServiceAccount %s: annotation azure.workload.identity/client-id must be the app registration's client id", sa.Name)
	}
	return p
}

func checkTopologySpread(d *appsv1.Deployment) problems {
	var p problems
	tsc := d.Spec.Template.Spec.TopologySpreadConstraints
	if len(tsc) == 0 {
		p.addf("%s: no topologySpreadConstraints", d.Name)
	}
	for _, c := range tsc {
		if !selects(c.LabelSelector, d.Spec.Template.Labels) {
			p.addf("%s: topology spread over %s does not select its own pods", d.Name, c.TopologyKey)
		}
	}
	return p
}

// checkStepConfig wants the configuration from the generated ConfigMap
// (its name carries the content's hash, so a change rolls the pods), and
// the step's own NATS seed where the configuration says.
func checkStepConfig(step string, d *appsv1.Deployment, m *manifests) problems {
	var p problems
	spec := d.Spec.Template.Spec
	mounts := map[string]string{} // volume → mount path
	for _, c := range spec.Containers {
		for _, vm := range c.VolumeMounts {
			mounts[vm.Name] = vm.MountPath
		}
	}
	var cm *corev1.ConfigMap
	var cmPath, seedDir string
	for _, v := range spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			if !regexp.MustCompile(`^` + configMapName + `-[a-z0-9]{10}$`).MatchString(v.ConfigMap.Name) {
				p.addf("%s: ConfigMap %q is not the generated %s-<hash>: a changed configuration would not roll the pods", d.Name, v.ConfigMap.Name, configMapName)
			}
			cm, cmPath = m.configMaps[v.ConfigMap.Name], mounts[v.Name]
		case v.Secret != nil && v.Secret.SecretName == "guestflow-nats-"+step:
			seedDir = mounts[v.Name]
			if v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o007 != 0 {
				p.addf("%s: the NATS seed must not be readable by others (defaultMode 0440)", d.Name)
			}
		}
	}
	if cm == nil || cmPath == "" {
		p.addf("%s: no mounted ConfigMap from the manifests", d.Name)
		return p
	}
	for _, c := range spec.Containers {
		if c.Name == "worker" {
			if got, _ := flagValue(c.Args, "--config"); got != cmPath+"/guestflow.yaml" {
				p.addf("%s: --config is %q, want the mounted %s/guestflow.yaml", d.Name, got, cmPath)
			}
		}
	}
	var cfg struct {
		NATS struct {
			NKeyFile string `json:"nkeyFile"`
		} `json:"nats"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data["guestflow.yaml"]), &cfg); err != nil {
		p.addf("ConfigMap %s: guestflow.yaml: %v", cm.Name, err)
	}
	if seedDir == "" || cfg.NATS.NKeyFile != seedDir+"/nkey.seed" {
		p.addf("%s: nats.nkeyFile %q must be nkey.seed in the mounted Secret guestflow-nats-%s (mounted at %q)", d.Name, cfg.NATS.NKeyFile, step, seedDir)
	}
	// The step's NATS user may subscribe to its own inbox prefix only.
	for _, c := range spec.Containers {
		if c.Name != "worker" {
			continue
		}
		var inbox string
		for _, e := range c.Env {
			if e.Name == "GUESTFLOW_NATS_INBOXPREFIX" {
				inbox = e.Value
			}
		}
		if inbox != inboxOf(step) {
			p.addf("%s: GUESTFLOW_NATS_INBOXPREFIX is %q, want %s, the only inbox its NATS user may read (nats-values.yaml)", d.Name, inbox, inboxOf(step))
		}
	}
	return p
}

// checkNetworkPolicies wants d's pods under a default deny, and what the
// policies selecting them allow to be: egress to NATS' client port, DNS
// and 443; ingress to the ops port from the monitoring namespace.
func checkNetworkPolicies(d *appsv1.Deployment, m *manifests) problems {
	var p problems
	podLabels := d.Spec.Template.Labels
	var denyAll bool
	var ingress, egress bool
	for _, np := range m.networkPolicies {
		if !selects(&np.Spec.PodSelector, podLabels) && !emptySelector(np.Spec.PodSelector) {
			continue
		}
		types := np.Spec.PolicyTypes
		hasIn, hasEg := slices.Contains(types, networkingv1.PolicyTypeIngress), slices.Contains(types, networkingv1.PolicyTypeEgress)
		if emptySelector(np.Spec.PodSelector) && hasIn && hasEg && len(np.Spec.Ingress) == 0 && len(np.Spec.Egress) == 0 {
			denyAll = true
		}
		ingress, egress = ingress || hasIn, egress || hasEg
		for _, r := range np.Spec.Egress {
			p = append(p, checkEgress(d.Name, np.Name, r)...)
		}
		for _, r := range np.Spec.Ingress {
			if len(r.Ports) == 0 || len(r.From) == 0 {
				p.addf("NetworkPolicy %s lets anything reach %s on any port", np.Name, d.Name)
			}
			for _, port := range r.Ports {
				if port.Port == nil || port.Port.IntValue() != opsPort {
					p.addf("NetworkPolicy %s lets %s be reached on a port other than the ops port %d", np.Name, d.Name, opsPort)
				}
			}
			for _, peer := range r.From {
				if peer.NamespaceSelector == nil || peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" || peer.IPBlock != nil {
					p.addf("NetworkPolicy %s lets %s be reached from outside the monitoring namespace", np.Name, d.Name)
				}
			}
		}
	}
	if !denyAll {
		p.addf("%s: no default-deny NetworkPolicy over the namespace", d.Name)
	}
	if !ingress || !egress {
		p.addf("%s: no NetworkPolicy restricts both its ingress and egress", d.Name)
	}
	return p
}

func emptySelector(s metav1.LabelSelector) bool {
	return len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0
}

// checkEgress allows NATS (TCP 4222, in namespace nats), DNS (53, to
// kube-system) and HTTPS (TCP 443, anywhere: Microsoft's endpoints have no
// fixed addresses), and nothing else.
func checkEgress(pod, policy string, r networkingv1.NetworkPolicyEgressRule) problems {
	var p problems
	if len(r.Ports) == 0 {
		p.addf("NetworkPolicy %s lets %s connect on any port", policy, pod)
		return p
	}
	nsOf := func(peer networkingv1.NetworkPolicyPeer) string {
		if peer.NamespaceSelector == nil {
			return ""
		}
		return peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]
	}
	for _, port := range r.Ports {
		proto := corev1.ProtocolTCP
		if port.Protocol != nil {
			proto = *port.Protocol
		}
		n := 0
		if port.Port != nil {
			n = port.Port.IntValue()
		}
		var want string
		switch {
		case n == 4222 && proto == corev1.ProtocolTCP:
			want = "nats"
		case n == 53:
			want = "kube-system"
		case n == 443 && proto == corev1.ProtocolTCP:
			want = ""
		default:
			p.addf("NetworkPolicy %s lets %s connect to %s %d: only NATS (4222), DNS (53) and HTTPS (443)", policy, pod, proto, n)
			continue
		}
		for _, peer := range r.To {
			if want != "" && (nsOf(peer) != want || peer.IPBlock != nil) {
				p.addf("NetworkPolicy %s lets %s reach port %d outside namespace %s", policy, pod, n, want)
			}
		}
		if want != "" && len(r.To) == 0 {
			p.addf("NetworkPolicy %s lets %s reach port %d anywhere, not only in namespace %s", policy, pod, n, want)
		}
	}
	return p
}
