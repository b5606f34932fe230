// Package deploy holds guestflow's deployment: the container image
// (Dockerfile), the Kubernetes manifests (kubernetes/: a kustomize base and
// the dev and production overlays), and the values for the NATS Helm chart
// (nats-values.yaml). docs/deploy.md walks through using them.
//
// It is a Go module of its own so that the Kubernetes, kustomize and NATS
// server packages its tests need stay out of guestflow's module. The tests
// render every overlay with kustomize, decode each object strictly into its
// Kubernetes or KEDA type, check the policies the manifests promise (no
// replicas where KEDA scales, the restricted security context, probes on the
// ops port, …), hold nats-values.yaml's users to the README's permission
// tables, and try those users on an embedded NATS server configured as the
// chart would configure it. The repository's .ci/run runs them:
//
//	(cd deploy && go test ./...)
package deploy
