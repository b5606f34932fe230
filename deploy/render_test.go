package deploy

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/guestflow/guestflow/deploy/internal/kedav1alpha1"
)

// manifests is what one kustomization renders, each object decoded into
// its API type and keyed by name.
type manifests struct {
	dir             string
	namespaces      map[string]*corev1.Namespace
	serviceAccounts map[string]*corev1.ServiceAccount
	configMaps      map[string]*corev1.ConfigMap
	services        map[string]*corev1.Service
	deployments     map[string]*appsv1.Deployment
	pdbs            map[string]*policyv1.PodDisruptionBudget
	networkPolicies map[string]*networkingv1.NetworkPolicy
	scaledObjects   map[string]*kedav1alpha1.ScaledObject
	// namespaceOf is the metadata.namespace of every object, by "Kind/name".
	namespaceOf map[string]string
}

// render runs kustomize on dir, as `kubectl apply -k dir` would, and
// decodes every object strictly (see decodeStrict). An object of a kind
// without a Go type here is an error: add its type rather than let it pass
// unchecked.
func render(dir string) (*manifests, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	m := &manifests{
		dir:             dir,
		namespaces:      map[string]*corev1.Namespace{},
		serviceAccounts: map[string]*corev1.ServiceAccount{},
		configMaps:      map[string]*corev1.ConfigMap{},
		services:        map[string]*corev1.Service{},
		deployments:     map[string]*appsv1.Deployment{},
		pdbs:            map[string]*policyv1.PodDisruptionBudget{},
		networkPolicies: map[string]*networkingv1.NetworkPolicy{},
		scaledObjects:   map[string]*kedav1alpha1.ScaledObject{},
		namespaceOf:     map[string]string{},
	}
	var errs []error
	for _, r := range res.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return nil, err
		}
		j, err := yaml.YAMLToJSON(y)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", r.GetKind(), r.GetName(), err)
		}
		id := r.GetKind() + "/" + r.GetName()
		m.namespaceOf[id] = r.GetNamespace()
		if err := m.add(r.GetApiVersion(), r.GetKind(), r.GetName(), j); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", dir, id, err))
		}
	}
	return m, errors.Join(errs...)
}

func (m *manifests) add(apiVersion, kind, name string, j []byte) error {
	var err error
	switch apiVersion + " " + kind {
	case "v1 Namespace":
		m.namespaces[name], err = decode[corev1.Namespace](j)
	case "v1 ServiceAccount":
		m.serviceAccounts[name], err = decode[corev1.ServiceAccount](j)
	case "v1 ConfigMap":
		m.configMaps[name], err = decode[corev1.ConfigMap](j)
	case "v1 Service":
		m.services[name], err = decode[corev1.Service](j)
	case "apps/v1 Deployment":
		m.deployments[name], err = decode[appsv1.Deployment](j)
	case "policy/v1 PodDisruptionBudget":
		m.pdbs[name], err = decode[policyv1.PodDisruptionBudget](j)
	case "networking.k8s.io/v1 NetworkPolicy":
		m.networkPolicies[name], err = decode[networkingv1.NetworkPolicy](j)
	case "keda.sh/v1alpha1 ScaledObject":
		m.scaledObjects[name], err = decode[kedav1alpha1.ScaledObject](j)
	default:
		return fmt.Errorf("no Go type to check %s %s against; add one to render_test.go", apiVersion, kind)
	}
	return err
}

func decode[T any](j []byte) (*T, error) {
	v := new(T)
	return v, decodeStrict(j, v)
}

// decodeStrict decodes JSON into v as the API server does: field names
// match exactly, with case, and an unknown or duplicated field is an
// error. (sigs.k8s.io/yaml's own strict mode matches names ignoring case,
// so a "Replicas:" would slip through it.)
func decodeStrict(j []byte, v any) error {
	strict, err := json.UnmarshalStrict(j, v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// overlays are the kustomizations meant to be applied.
var overlays = []string{"dev", "production"}

func overlayDir(name string) string { return filepath.Join("kubernetes", "overlays", name) }

// renderAll renders the base and every overlay once per test binary.
var rendered = map[string]*manifests{}

func mustRender(t *testing.T, dir string) *manifests {
	t.Helper()
	if m, ok := rendered[dir]; ok {
		return m
	}
	m, err := render(dir)
	if err != nil {
		t.Fatal(err)
	}
	rendered[dir] = m
	return m
}

// TestEveryKustomizationRendersAndDecodesStrictly renders the base and each
// overlay and decodes every object into its type: a misspelt or miscased
// field, or a kind nobody checks, fails here.
func TestEveryKustomizationRendersAndDecodesStrictly(t *testing.T) {
	dirs := []string{filepath.Join("kubernetes", "base")}
	for _, o := range overlays {
		dirs = append(dirs, overlayDir(o))
	}
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			m := mustRender(t, dir)
			if len(m.deployments) == 0 {
				t.Fatalf("%s rendered no Deployment", dir)
			}
			var ids []string
			for id := range m.namespaceOf {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			t.Logf("%s: %d objects: %v", dir, len(ids), ids)
		})
	}
}

// TestStrictDecodingRefusesWhatTheAPIServerWould proves that the decoding
// above can fail: a misspelt field, a field in the wrong case, a duplicated
// field and an unknown field of the KEDA type are each refused.
func TestStrictDecodingRefusesWhatTheAPIServerWould(t *testing.T) {
	cases := map[string]struct {
		apiVersion, kind, json string
	}{
		"misspelt":      {"apps/v1", "Deployment", `{"spec":{"replica":1}}`},
		"wrong case":    {"apps/v1", "Deployment", `{"spec":{"Replicas":1}}`},
		"nested case":   {"apps/v1", "Deployment", `{"spec":{"template":{"spec":{"terminationgraceperiodseconds":40}}}}`},
		"duplicated":    {"v1", "Namespace", `{"metadata":{"name":"a","name":"b"}}`},
		"keda unknown":  {"keda.sh/v1alpha1", "ScaledObject", `{"spec":{"minReplicas":0}}`},
		"keda case":     {"keda.sh/v1alpha1", "ScaledObject", `{"spec":{"triggers":[{"Type":"nats-jetstream"}]}}`},
		"keda status":   {"keda.sh/v1alpha1", "ScaledObject", `{"status":{}}`},
		"unknown kind":  {"v1", "Secret", `{}`},
		"pdb misspelt":  {"policy/v1", "PodDisruptionBudget", `{"spec":{"maxUnavailible":1}}`},
		"policy nested": {"networking.k8s.io/v1", "NetworkPolicy", `{"spec":{"egress":[{"too":[]}]}}`},
	}
	for name, c := range cases {
		m := &manifests{
			namespaces: map[string]*corev1.Namespace{}, serviceAccounts: map[string]*corev1.ServiceAccount{},
			configMaps: map[string]*corev1.ConfigMap{}, services: map[string]*corev1.Service{},
			deployments: map[string]*appsv1.Deployment{}, pdbs: map[string]*policyv1.PodDisruptionBudget{},
			networkPolicies: map[string]*networkingv1.NetworkPolicy{}, scaledObjects: map[string]*kedav1alpha1.ScaledObject{},
		}
		if err := m.add(c.apiVersion, c.kind, "x", []byte(c.json)); err == nil {
			t.Errorf("%s: %s was accepted", name, c.json)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
