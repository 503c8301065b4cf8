// Package k8stest holds the tests of the Kubernetes manifests in deploy/k8s
// and of the images' user. They render every kustomize overlay, decode each
// object strictly into the Kubernetes API types, and check the deployment
// rules (probes, resources, security context, autoscaling, disruption
// budgets, network flows, NATS and the OpenTelemetry Collector) against the
// manifests and against the services' own source: the settings a service
// reads are found by parsing its Go code, so a renamed variable or a new
// service without a manifest fails here rather than in a cluster.
//
// The package has no code of its own; run it with go test.
package k8stest
