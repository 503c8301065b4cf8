package k8stest

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// rule is one deployment rule; it returns what the world breaks.
type rule struct {
	name  string
	check func(w *world) []string
}

var rules = []rule{
	{"service-manifests", checkServiceManifests},
	{"images", checkImages},
	{"probes", checkProbes},
	{"resources", checkResources},
	{"security", checkSecurity},
	{"env", checkEnv},
	{"ports", checkPorts},
	{"addresses", checkAddresses},
	{"metrics", checkMetrics},
	{"termination", checkTermination},
	{"secrets", checkSecrets},
	{"autoscaling", checkAutoscaling},
	{"replicas", checkReplicas},
	{"disruption-budgets", checkDisruptionBudgets},
	{"network-policies", checkNetworkPolicies},
	{"ingress", checkIngress},
	{"nats", checkNATS},
	{"nats-security", checkNATSSecurity},
	{"otel-collector", checkCollector},
	{"memory-limit", checkMemoryLimit},
	{"workers-fit", checkWorkersFit},
	{"connection-budget", checkConnectionBudget},
}

const (
	labelName      = "app.kubernetes.io/name"
	labelComponent = "app.kubernetes.io/component"
	imageRepo      = "ghcr.io/ml-connector/"
)

// Design facts the rules hold the manifests (and the services) to; see
// DESIGN.md, "Deployment" and "Conventions every part keeps".
var (
	// autoscaled services: the consumers and the webhook.
	autoscaled = []string{"payment-orchestrator", "erp-poster", "gc-webhook"}
	// pollers: one active per connection (Postgres advisory lock), the
	// other a standby.
	pollers = []string{"ifs-poller", "jde-poller"}
	// designListeners are listen addresses services must read beyond
	// HTTP_ADDR, which every service has.
	designListeners = map[string][]string{
		"gc-webhook": {"WEBHOOK_ADDR"},
		"erp-poster": {"GRPC_ADDR"},
		"console":    {"CONSOLE_ADDR"},
	}
	// grpcServices are ready when their gRPC health service says so.
	grpcServices = map[string]string{"erp-poster": "GRPC_ADDR"}
	// perOverlay are the numbers each overlay promises.
	// dbConnections is the overlay's budget of Postgres connections
	// (deploy/README.md, "Postgres connection budget").
	perOverlay = map[string]struct{ streamReplicas, natsNodes, pollerReplicas, dbConnections int }{
		"base":          {3, 3, 2, 180},
		"overlays/dev":  {1, 1, 1, 90},
		"overlays/prod": {3, 3, 2, 180},
	}
	// secretSettings must come from Secrets in every service that reads them.
	secretSettings = []string{"DATABASE_URL", "MLC_MASTER_KEY", "GC_WEBHOOK_SECRET"}
	// otelSDK are the standard variables the OpenTelemetry SDK reads itself
	// (resource and exporter configuration); names the services' own code
	// looks up are found in the source.
	otelSDK = []string{
		"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SDK_DISABLED",
		"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
		"OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TIMEOUT",
		"OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_CERTIFICATE",
		"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_METRIC_EXPORT_INTERVAL",
	}
)

func checkServiceManifests(w *world) (probs []string) {
	for _, svc := range w.services {
		wl, _, err := w.svc(svc)
		if err != nil {
			probs = append(probs, fmt.Sprintf("services/%s has no manifest: %v", svc, err))
			continue
		}
		if wl.Kind != "Deployment" {
			probs = append(probs, fmt.Sprintf("%s: want a Deployment, got %s", svc, wl))
		}
		if wl.Template.Labels[labelComponent] != "service" {
			probs = append(probs, fmt.Sprintf("%s: pods lack %s=service (the network policies and this test rely on it)", svc, labelComponent))
		}
		if len(wl.Template.Spec.Containers) != 1 {
			probs = append(probs, fmt.Sprintf("%s: %d containers, want 1", svc, len(wl.Template.Spec.Containers)))
		}
		if sa := wl.Template.Spec.ServiceAccountName; sa != svc || w.c.serviceAccount(svc) == nil {
			probs = append(probs, fmt.Sprintf("%s: runs as ServiceAccount %q, want its own ServiceAccount %s", svc, sa, svc))
		}
		if s := w.c.service(svc); s == nil {
			probs = append(probs, fmt.Sprintf("%s: no Service", svc))
		} else if b := w.c.serviceBackends(s); len(b) != 1 || b[0].Name != svc {
			probs = append(probs, fmt.Sprintf("Service %s selects %v, want only %s", svc, b, wl))
		}
	}
	for _, d := range w.c.Deployments {
		if d.Spec.Template.Labels[labelComponent] == "service" && !slices.Contains(w.services, d.Name) {
			probs = append(probs, fmt.Sprintf("deployment %s is labelled a service but services/%s does not exist", d.Name, d.Name))
		}
	}
	return probs
}

var imageDigest = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// splitImage splits an image reference into repository, tag and digest.
func splitImage(ref string) (repo, tag, digest string) {
	repo, digest, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo, tag = repo[:i], repo[i+1:]
	}
	return repo, tag, digest
}

func checkImages(w *world) (probs []string) {
	for _, svc := range w.services {
		if _, ctr, err := w.svc(svc); err == nil {
			if repo, _, _ := splitImage(ctr.Image); repo != imageRepo+svc {
				probs = append(probs, fmt.Sprintf("%s: image %q, want %s%s (built by make images)", svc, ctr.Image, imageRepo, svc))
			}
		}
	}
	for _, wl := range w.c.workloads() {
		for _, ctr := range wl.Template.Spec.Containers {
			repo, tag, digest := splitImage(ctr.Image)
			ours := strings.HasPrefix(repo, imageRepo)
			if ours && w.overlay == "base" {
				continue // the overlays pin our own images
			}
			if (tag == "" && digest == "") || tag == "latest" {
				probs = append(probs, fmt.Sprintf("%s: image %q is not pinned to a version", wl, ctr.Image))
			}
			// Production runs exactly what was built and tested: our own
			// images by digest (make pin), never by a tag that can move.
			if ours && w.overlay == "overlays/prod" && !imageDigest.MatchString(digest) {
				probs = append(probs, fmt.Sprintf("%s: image %q is not pinned by digest in prod (make images, make push, make pin)", wl, ctr.Image))
			}
			// Someone else's image is checked at deploy time: the README
			// says how, for each one by name and tag.
			if !ours && w.overlay == "overlays/prod" && !strings.Contains(w.readme, "`"+repo+":"+tag+"`") {
				probs = append(probs, fmt.Sprintf("%s: third-party image %s:%s is not listed in %s (Third-party images: how to verify its digest)", wl, repo, tag, readmePath))
			}
		}
	}
	return probs
}

func checkProbes(w *world) (probs []string) {
	for _, svc := range w.services {
		_, ctr, err := w.svc(svc)
		if err != nil {
			continue
		}
		ls, _ := w.listeners(svc)
		httpPort, ok := ls["HTTP_ADDR"]
		if !ok {
			probs = append(probs, fmt.Sprintf("%s: services/%s does not read HTTP_ADDR", svc, svc))
			continue
		}
		httpGet := func(kind string, p *corev1.Probe, path string) {
			switch {
			case p == nil:
				probs = append(probs, fmt.Sprintf("%s: no %s probe", svc, kind))
			case p.HTTPGet == nil:
				probs = append(probs, fmt.Sprintf("%s: %s probe is not an HTTP GET of %s", svc, kind, path))
			case p.HTTPGet.Path != path:
				probs = append(probs, fmt.Sprintf("%s: %s probe gets %s, want %s", svc, kind, p.HTTPGet.Path, path))
			default:
				if n, ok := portNumber(ctr, p.HTTPGet.Port); !ok || n != httpPort {
					probs = append(probs, fmt.Sprintf("%s: %s probe on port %s, want HTTP_ADDR's port %d", svc, kind, p.HTTPGet.Port.String(), httpPort))
				}
			}
		}
		httpGet("startup", ctr.StartupProbe, "/healthz")
		httpGet("liveness", ctr.LivenessProbe, "/healthz")
		if v, ok := grpcServices[svc]; ok {
			p := ctr.ReadinessProbe
			want, read := ls[v]
			switch {
			case !read:
				probs = append(probs, fmt.Sprintf("%s: services/%s does not read %s, so there is no gRPC port to probe", svc, svc, v))
			case p == nil || p.GRPC == nil:
				probs = append(probs, fmt.Sprintf("%s: readiness probe must be the gRPC health check on %s's port", svc, v))
			case p.GRPC.Port != want:
				probs = append(probs, fmt.Sprintf("%s: gRPC readiness probe on port %d, want %s's port %d", svc, p.GRPC.Port, v, want))
			}
		} else {
			httpGet("readiness", ctr.ReadinessProbe, "/readyz")
		}
	}
	for _, wl := range w.c.workloads() {
		for i := range wl.Template.Spec.Containers {
			ctr := &wl.Template.Spec.Containers[i]
			for kind, p := range map[string]*corev1.Probe{"liveness": ctr.LivenessProbe, "readiness": ctr.ReadinessProbe} {
				if p == nil {
					probs = append(probs, fmt.Sprintf("%s: container %s has no %s probe", wl, ctr.Name, kind))
					continue
				}
				if p.HTTPGet != nil {
					if _, ok := portNumber(ctr, p.HTTPGet.Port); !ok {
						probs = append(probs, fmt.Sprintf("%s: %s probe port %s is not a port of container %s", wl, kind, p.HTTPGet.Port.String(), ctr.Name))
					}
				}
			}
		}
	}
	return probs
}

func checkResources(w *world) (probs []string) {
	for _, wl := range w.c.workloads() {
		for _, ctr := range wl.Template.Spec.Containers {
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, hasReq := ctr.Resources.Requests[r]
				lim, hasLim := ctr.Resources.Limits[r]
				switch {
				case !hasReq || req.IsZero():
					probs = append(probs, fmt.Sprintf("%s: container %s has no %s request", wl, ctr.Name, r))
				case !hasLim || lim.IsZero():
					probs = append(probs, fmt.Sprintf("%s: container %s has no %s limit", wl, ctr.Name, r))
				case req.Cmp(lim) > 0:
					probs = append(probs, fmt.Sprintf("%s: container %s requests %s %s, above its limit %s", wl, ctr.Name, req.String(), r, lim.String()))
				}
			}
		}
	}
	return probs
}

func checkSecurity(w *world) (probs []string) {
	for _, ns := range w.c.Namespaces {
		if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
			probs = append(probs, fmt.Sprintf("namespace %s does not enforce the restricted Pod Security Standard", ns.Name))
		}
	}
	if len(w.c.Namespaces) != 1 {
		probs = append(probs, fmt.Sprintf("%d Namespaces, want 1", len(w.c.Namespaces)))
	}
	for _, sa := range w.c.ServiceAccounts {
		if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
			probs = append(probs, fmt.Sprintf("ServiceAccount %s mounts an API token; nothing here talks to the API server", sa.Name))
		}
	}
	for _, wl := range w.c.workloads() {
		spec := &wl.Template.Spec
		pod := spec.SecurityContext
		if pod == nil {
			pod = &corev1.PodSecurityContext{}
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			probs = append(probs, fmt.Sprintf("%s: automountServiceAccountToken is not false", wl))
		}
		if spec.HostNetwork || spec.HostPID || spec.HostIPC {
			probs = append(probs, fmt.Sprintf("%s: shares a host namespace", wl))
		}
		for _, v := range spec.Volumes {
			if v.HostPath != nil {
				probs = append(probs, fmt.Sprintf("%s: hostPath volume %s", wl, v.Name))
			}
		}
		for _, ctr := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			sc := ctr.SecurityContext
			if sc == nil {
				sc = &corev1.SecurityContext{}
			}
			bad := func(format string, args ...any) {
				probs = append(probs, fmt.Sprintf("%s: container %s: ", wl, ctr.Name)+fmt.Sprintf(format, args...))
			}
			nonRoot := sc.RunAsNonRoot
			if nonRoot == nil {
				nonRoot = pod.RunAsNonRoot
			}
			if nonRoot == nil || !*nonRoot {
				bad("runAsNonRoot is not true")
			}
			uid := sc.RunAsUser
			if uid == nil {
				uid = pod.RunAsUser
			}
			if uid != nil && *uid == 0 {
				bad("runs as UID 0")
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				bad("readOnlyRootFilesystem is not true")
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				bad("allowPrivilegeEscalation is not false")
			}
			if sc.Privileged != nil && *sc.Privileged {
				bad("privileged")
			}
			if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
				bad("capabilities do not drop ALL")
			} else if len(sc.Capabilities.Add) > 0 {
				bad("adds capabilities %v", sc.Capabilities.Add)
			}
			sp := sc.SeccompProfile
			if sp == nil {
				sp = pod.SeccompProfile
			}
			if sp == nil || sp.Type != corev1.SeccompProfileTypeRuntimeDefault {
				bad("seccompProfile is not RuntimeDefault")
			}
		}
	}
	return probs
}

func checkEnv(w *world) (probs []string) {
	for _, svc := range w.services {
		_, ctr, err := w.svc(svc)
		if err != nil {
			continue
		}
		rd := w.reads[svc]
		env, p := w.c.containerEnv(ctr)
		probs = append(probs, prefix(svc+": ", p)...)
		for _, name := range sortedKeys(env) {
			v := env[name]
			s, read := rd.Settings[name]
			if !read {
				if !rd.OTEL[name] && !slices.Contains(otelSDK, name) && !slices.Contains(goRuntime, name) {
					probs = append(probs, fmt.Sprintf("%s: sets %s (%s), which services/%s does not read", svc, name, v.From, svc))
				}
				continue
			}
			if s.Secret() || slices.Contains(secretSettings, name) {
				if v.Secret == nil {
					probs = append(probs, fmt.Sprintf("%s: %s is a secret and must come from a Secret (secretKeyRef), not %s", svc, name, v.From))
				}
			}
			if v.Secret != nil && s.Required() && v.Secret.Optional != nil && *v.Secret.Optional {
				probs = append(probs, fmt.Sprintf("%s: %s is required (%s) but its secretKeyRef is optional", svc, name, s.Pos))
			}
			if v.Known {
				if err := checkValue(s, v.Value); err != nil {
					probs = append(probs, fmt.Sprintf("%s: %s (%s): %v", svc, name, v.From, err))
				}
			}
		}
		for _, name := range sortedKeys(rd.Settings) {
			s := rd.Settings[name]
			if _, set := env[name]; set {
				continue
			}
			switch {
			case s.Required():
				probs = append(probs, fmt.Sprintf("%s: requires %s (read at %s) but the manifest does not set it", svc, name, s.Pos))
			case isLoopback(s.DefString()):
				probs = append(probs, fmt.Sprintf("%s: %s defaults to %q, this machine, which in a pod is wrong; set it", svc, name, s.DefString()))
			case slices.Contains(secretSettings, name):
				probs = append(probs, fmt.Sprintf("%s: reads %s but the manifest does not take it from a Secret", svc, name))
			}
		}
	}
	return probs
}

func checkPorts(w *world) (probs []string) {
	for _, svc := range w.services {
		wl, ctr, err := w.svc(svc)
		if err != nil {
			continue
		}
		ls, p := w.listeners(svc)
		probs = append(probs, p...)
		for _, v := range append([]string{"HTTP_ADDR"}, designListeners[svc]...) {
			if _, ok := ls[v]; !ok {
				probs = append(probs, fmt.Sprintf("%s: services/%s does not read %s (DESIGN.md: it listens there)", svc, svc, v))
			}
		}
		want := map[int32]string{}
		for name, port := range ls {
			want[port] = name
			if !hasPort(ctr, port) {
				probs = append(probs, fmt.Sprintf("%s: listens on %d (%s) but the container does not declare that port", svc, port, name))
			}
		}
		for _, cp := range ctr.Ports {
			if _, ok := want[cp.ContainerPort]; !ok {
				probs = append(probs, fmt.Sprintf("%s: container port %s/%d matches no listen address the service reads", svc, cp.Name, cp.ContainerPort))
			}
		}
		if s := w.c.service(svc); s != nil {
			exposed := map[int32]bool{}
			for _, sp := range s.Spec.Ports {
				if n, ok := podPort(&wl.Template.Spec, sp.TargetPort); ok {
					exposed[n] = true
				}
			}
			for name, port := range ls {
				if !exposed[port] {
					probs = append(probs, fmt.Sprintf("Service %s does not expose %s's port %d", svc, name, port))
				}
			}
		}
	}
	for _, s := range w.c.Services {
		backends := w.c.serviceBackends(s)
		if len(backends) != 1 {
			probs = append(probs, fmt.Sprintf("Service %s selects %d workloads, want 1", s.Name, len(backends)))
			continue
		}
		for _, sp := range s.Spec.Ports {
			n, ok := podPort(&backends[0].Template.Spec, sp.TargetPort)
			if !ok {
				probs = append(probs, fmt.Sprintf("Service %s port %s targets %s, which %s does not expose", s.Name, sp.Name, sp.TargetPort.String(), backends[0]))
				continue
			}
			// A headless Service hands out pod addresses: clients dial the
			// Service port on the pod itself.
			if s.Spec.ClusterIP == corev1.ClusterIPNone && n != sp.Port {
				probs = append(probs, fmt.Sprintf("headless Service %s port %d maps to container port %d; clients would dial %d", s.Name, sp.Port, n, sp.Port))
			}
		}
	}
	return probs
}

// dialTargets are the addresses services dial inside the cluster: the
// setting, the Service it must name, and the container port it must reach.
var dialTargets = []struct {
	setting  string
	readers  []string // services that must read it; nil means every service
	service  string
	schemes  []string
	wantPort func(w *world) (int32, error)
}{
	{"NATS_URL", nil, "nats", []string{"nats", "tls"}, natsClientPort},
	{"OTEL_EXPORTER_OTLP_ENDPOINT", nil, "otel-collector", []string{"http"}, collectorGRPCPort},
	{"ERP_POSTER_ADDR", []string{"payment-orchestrator"}, "erp-poster", nil, erpPosterGRPCPort},
}

func checkAddresses(w *world) (probs []string) {
	for _, dt := range dialTargets {
		want, err := dt.wantPort(w)
		if err != nil {
			probs = append(probs, fmt.Sprintf("%s: %v", dt.setting, err))
			continue
		}
		readers := dt.readers
		if readers == nil {
			readers = w.services
		}
		for _, svc := range readers {
			_, read := w.reads[svc].Settings[dt.setting]
			if !read && !w.reads[svc].OTEL[dt.setting] && !strings.HasPrefix(dt.setting, "OTEL_") {
				probs = append(probs, fmt.Sprintf("%s: services/%s does not read %s", svc, svc, dt.setting))
				continue
			}
			_, ctr, err := w.svc(svc)
			if err != nil {
				continue
			}
			env, _ := w.c.containerEnv(ctr)
			v, ok := env[dt.setting]
			if !ok || !v.Known || v.Value == "" {
				probs = append(probs, fmt.Sprintf("%s: %s is not set in the manifest", svc, dt.setting))
				continue
			}
			for item := range strings.SplitSeq(v.Value, ",") {
				item = strings.TrimSpace(item)
				host, port := "", ""
				if dt.schemes != nil {
					u, err := url.Parse(item)
					if err != nil || !slices.Contains(dt.schemes, u.Scheme) {
						probs = append(probs, fmt.Sprintf("%s: %s=%q: want a URL with scheme %v", svc, dt.setting, item, dt.schemes))
						continue
					}
					host, port = u.Hostname(), u.Port()
				} else if host, port, err = net.SplitHostPort(item); err != nil {
					probs = append(probs, fmt.Sprintf("%s: %s=%q is not host:port", svc, dt.setting, item))
					continue
				}
				if err := w.c.resolveDial(host, port, dt.service, want); err != nil {
					probs = append(probs, fmt.Sprintf("%s: %s=%q: %v", svc, dt.setting, item, err))
				}
			}
		}
	}
	return probs
}

func erpPosterGRPCPort(w *world) (int32, error) {
	ls, _ := w.listeners("erp-poster")
	p, ok := ls["GRPC_ADDR"]
	if !ok {
		return 0, fmt.Errorf("services/erp-poster does not read GRPC_ADDR")
	}
	return p, nil
}

func checkMetrics(w *world) (probs []string) {
	for _, svc := range w.services {
		wl, ctr, err := w.svc(svc)
		if err != nil {
			continue
		}
		ls, _ := w.listeners(svc)
		port := ls["HTTP_ADDR"]
		a := wl.Template.Annotations
		named := slices.ContainsFunc(ctr.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == "metrics" && cp.ContainerPort == port })
		annotated := a["prometheus.io/scrape"] == "true" && a["prometheus.io/port"] == strconv.Itoa(int(port)) &&
			(a["prometheus.io/path"] == "" || a["prometheus.io/path"] == "/metrics")
		if !named && !annotated {
			probs = append(probs, fmt.Sprintf("%s: /metrics on port %d is neither annotated for Prometheus nor on a port named metrics", svc, port))
		}
	}
	return probs
}

// closeMargin is what the services allow themselves after SHUTDOWN_TIMEOUT
// to stop the internal HTTP server and close NATS and Postgres
// (platform/service Run).
const closeMargin = 5

func checkTermination(w *world) (probs []string) {
	for _, svc := range w.services {
		wl, ctr, err := w.svc(svc)
		if err != nil {
			continue
		}
		v, ok := w.effective(svc, "SHUTDOWN_TIMEOUT")
		if !ok {
			probs = append(probs, fmt.Sprintf("%s: SHUTDOWN_TIMEOUT unknown", svc))
			continue
		}
		d, err := parseSeconds(v)
		if err != nil {
			probs = append(probs, fmt.Sprintf("%s: SHUTDOWN_TIMEOUT=%q: %v", svc, v, err))
			continue
		}
		grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
		if g := wl.Template.Spec.TerminationGracePeriodSeconds; g != nil {
			grace = *g
		}
		var sleep int64
		if ctr.Lifecycle != nil && ctr.Lifecycle.PreStop != nil && ctr.Lifecycle.PreStop.Sleep != nil {
			sleep = ctr.Lifecycle.PreStop.Sleep.Seconds
		}
		if need := sleep + d + closeMargin; grace < need {
			probs = append(probs, fmt.Sprintf("%s: terminationGracePeriodSeconds %d < preStop %ds + SHUTDOWN_TIMEOUT %ds + %ds to close; work in flight would be killed", svc, grace, sleep, d, closeMargin))
		}
	}
	return probs
}

var createSecret = regexp.MustCompile(`\bkubectl\b.*\bcreate\s+secret\s+(generic|tls)\s+([a-z0-9.-]+)`)
var fromKey = regexp.MustCompile(`--from-(?:literal|file)=([A-Za-z0-9_.-]+)=`)

// documentedSecrets reads the kubectl create secret commands of the README
// (continued lines joined): secret name -> keys; a tls Secret has tls.crt
// and tls.key.
func documentedSecrets(readme string) map[string][]string {
	out := map[string][]string{}
	for cmd := range strings.SplitSeq(strings.ReplaceAll(readme, "\\\n", " "), "\n") {
		m := createSecret.FindStringSubmatch(cmd)
		if m == nil {
			continue
		}
		if m[1] == "tls" {
			out[m[2]] = append(out[m[2]], "tls.crt", "tls.key")
			continue
		}
		for _, k := range fromKey.FindAllStringSubmatch(cmd, -1) {
			out[m[2]] = append(out[m[2]], k[1])
		}
	}
	return out
}

func checkSecrets(w *world) (probs []string) {
	for _, s := range w.c.Secrets {
		probs = append(probs, fmt.Sprintf("Secret %s is in the manifests; secrets are created by the operator, never committed", s.Name))
	}
	for _, cm := range w.c.ConfigMaps {
		for k, v := range cm.Data {
			for item := range strings.SplitSeq(v, ",") {
				if u, err := url.Parse(strings.TrimSpace(item)); err == nil && u.User != nil {
					if _, has := u.User.Password(); has {
						probs = append(probs, fmt.Sprintf("ConfigMap %s key %s holds a URL with a password", cm.Name, k))
					}
				}
			}
		}
	}
	docs := documentedSecrets(w.readme)
	if !strings.Contains(w.readme, "kubectl apply -k deploy/k8s/overlays/prod") {
		probs = append(probs, readmePath+" does not show kubectl apply -k deploy/k8s/overlays/prod")
	}
	for _, wl := range w.c.workloads() {
		for _, ctr := range wl.Template.Spec.Containers {
			for _, e := range ctr.Env {
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					continue
				}
				ref := e.ValueFrom.SecretKeyRef
				if !slices.Contains(docs[ref.Name], ref.Key) {
					probs = append(probs, fmt.Sprintf("%s: Secret %s key %s is not created in %s (kubectl create secret generic %s --from-literal=%s=...)", wl, ref.Name, ref.Key, readmePath, ref.Name, ref.Key))
				}
			}
		}
	}
	for _, ing := range w.c.Ingresses {
		for _, tls := range ing.Spec.TLS {
			if _, ok := docs[tls.SecretName]; !ok {
				probs = append(probs, fmt.Sprintf("Ingress %s: TLS Secret %s is not created in %s", ing.Name, tls.SecretName, readmePath))
			}
		}
	}
	return probs
}

func checkAutoscaling(w *world) (probs []string) {
	targets := map[string]int{}
	for _, h := range w.c.HPAs {
		ref := h.Spec.ScaleTargetRef
		if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" {
			probs = append(probs, fmt.Sprintf("HPA %s scales %s %s, want an apps/v1 Deployment", h.Name, ref.APIVersion, ref.Kind))
			continue
		}
		targets[ref.Name]++
		if !slices.Contains(autoscaled, ref.Name) {
			probs = append(probs, fmt.Sprintf("HPA %s scales %s, which is not autoscaled by design", h.Name, ref.Name))
		}
		wl, ok := w.c.workload(ref.Name)
		if !ok {
			probs = append(probs, fmt.Sprintf("HPA %s scales %s, which does not exist", h.Name, ref.Name))
		} else if wl.Replicas != nil {
			probs = append(probs, fmt.Sprintf("%s sets replicas %d although HPA %s owns the count; every apply would reset it", wl, *wl.Replicas, h.Name))
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || h.Spec.MaxReplicas <= *h.Spec.MinReplicas {
			probs = append(probs, fmt.Sprintf("HPA %s: want 1 <= minReplicas < maxReplicas", h.Name))
		}
		cpu := false
		for _, m := range h.Spec.Metrics {
			if m.Resource != nil && m.Resource.Name == corev1.ResourceCPU && m.Resource.Target.AverageUtilization != nil &&
				*m.Resource.Target.AverageUtilization > 0 && *m.Resource.Target.AverageUtilization <= 100 {
				cpu = true
			}
		}
		if !cpu {
			probs = append(probs, fmt.Sprintf("HPA %s has no CPU utilization target", h.Name))
		}
	}
	for _, svc := range autoscaled {
		if targets[svc] != 1 {
			probs = append(probs, fmt.Sprintf("%s: %d HorizontalPodAutoscalers, want 1", svc, targets[svc]))
		}
	}
	return probs
}

func checkReplicas(w *world) (probs []string) {
	want, ok := perOverlay[w.overlay]
	if !ok {
		return []string{"no expectations for overlay " + w.overlay}
	}
	for _, p := range pollers {
		wl, ok := w.c.workload(p)
		if !ok {
			continue
		}
		if wl.Replicas == nil || int(*wl.Replicas) != want.pollerReplicas {
			probs = append(probs, fmt.Sprintf("%s: replicas %v, want %d (one active per connection, the rest standbys)", p, ptrStr(wl.Replicas), want.pollerReplicas))
		}
	}
	return probs
}

// minReplicas is the smallest number of pods a workload runs.
func (w *world) minReplicas(wl workload) int32 {
	for _, h := range w.c.HPAs {
		if h.Spec.ScaleTargetRef.Name == wl.Name && h.Spec.MinReplicas != nil {
			return *h.Spec.MinReplicas
		}
	}
	if wl.Replicas == nil {
		return 1
	}
	return *wl.Replicas
}

func checkDisruptionBudgets(w *world) (probs []string) {
	for _, wl := range w.c.workloads() {
		var mine []string
		for _, pdb := range w.c.PDBs {
			sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			if err != nil || pdb.Spec.Selector == nil || sel.Empty() {
				continue
			}
			if !sel.Matches(labels.Set(wl.Template.Labels)) {
				continue
			}
			mine = append(mine, pdb.Name)
			if p := pdb.Spec.UnhealthyPodEvictionPolicy; p == nil || *p != policyv1.AlwaysAllow {
				probs = append(probs, fmt.Sprintf("PDB %s: unhealthyPodEvictionPolicy %v, want AlwaysAllow: pods a dependency outage made unready would block node drains", pdb.Name, ptrStr(p)))
			}
			n := w.minReplicas(wl)
			switch {
			case pdb.Spec.MaxUnavailable != nil:
				v, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, int(n), true)
				if err != nil || v < 1 {
					probs = append(probs, fmt.Sprintf("PDB %s allows no disruption of %s; node drains would hang", pdb.Name, wl))
				}
			case pdb.Spec.MinAvailable != nil:
				v, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, int(n), true)
				if err != nil || v >= int(n) {
					probs = append(probs, fmt.Sprintf("PDB %s keeps all %d pods of %s; node drains would hang", pdb.Name, n, wl))
				}
			default:
				probs = append(probs, fmt.Sprintf("PDB %s sets neither minAvailable nor maxUnavailable", pdb.Name))
			}
		}
		if len(mine) != 1 {
			probs = append(probs, fmt.Sprintf("%s: %d PodDisruptionBudgets select its pods %v, want 1", wl, len(mine), mine))
		}
	}
	for _, pdb := range w.c.PDBs {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || pdb.Spec.Selector == nil || sel.Empty() {
			probs = append(probs, fmt.Sprintf("PDB %s has no usable selector", pdb.Name))
		}
	}
	return probs
}

func checkIngress(w *world) (probs []string) {
	// The console has an Ingress of its own (checked below); every other
	// one is the public webhook's.
	var webhooks []*networkingv1.Ingress
	for _, ing := range w.c.Ingresses {
		if ing.Name == "console" {
			probs = append(probs, checkConsoleIngress(w, ing)...)
			continue
		}
		webhooks = append(webhooks, ing)
	}
	if len(webhooks) != 1 {
		return append(probs, fmt.Sprintf("%d Ingresses, want exactly 1 (the public webhook)", len(webhooks)))
	}
	ing := webhooks[0]
	ls, _ := w.listeners("gc-webhook")
	webhookPort, ok := ls["WEBHOOK_ADDR"]
	if !ok {
		return []string{"gc-webhook does not read WEBHOOK_ADDR"}
	}
	if ing.Spec.DefaultBackend != nil {
		probs = append(probs, fmt.Sprintf("Ingress %s has a default backend; only /webhooks/gocardless may be public", ing.Name))
	}
	hosts := map[string]bool{}
	for _, tls := range ing.Spec.TLS {
		for _, h := range tls.Hosts {
			hosts[h] = true
		}
	}
	paths := 0
	for _, r := range ing.Spec.Rules {
		if !hosts[r.Host] {
			probs = append(probs, fmt.Sprintf("Ingress %s: host %q is not covered by TLS", ing.Name, r.Host))
		}
		if r.HTTP == nil {
			continue
		}
		for _, p := range r.HTTP.Paths {
			paths++
			if p.Path != "/webhooks/gocardless" || p.PathType == nil || *p.PathType != "Prefix" {
				probs = append(probs, fmt.Sprintf("Ingress %s: path %q (%v); only Prefix /webhooks/gocardless may be public", ing.Name, p.Path, ptrStr(p.PathType)))
			}
			b := p.Backend.Service
			if b == nil || b.Name != "gc-webhook" {
				probs = append(probs, fmt.Sprintf("Ingress %s: path %s goes to %v, want Service gc-webhook", ing.Name, p.Path, b))
				continue
			}
			s := w.c.service(b.Name)
			wl, ok := w.c.workload("gc-webhook")
			if s == nil || !ok {
				continue
			}
			reached := false
			for _, sp := range s.Spec.Ports {
				if (b.Port.Name != "" && sp.Name == b.Port.Name) || (b.Port.Number != 0 && sp.Port == b.Port.Number) {
					n, ok := podPort(&wl.Template.Spec, sp.TargetPort)
					reached = ok && n == webhookPort
				}
			}
			if !reached {
				probs = append(probs, fmt.Sprintf("Ingress %s: backend port %v does not reach WEBHOOK_ADDR's port %d", ing.Name, b.Port, webhookPort))
			}
		}
	}
	if paths == 0 {
		probs = append(probs, fmt.Sprintf("Ingress %s routes nothing", ing.Name))
	}
	// The controller must let through what gc-webhook accepts.
	if v, ok := w.effective("gc-webhook", "WEBHOOK_MAX_BODY_BYTES"); ok {
		max, _ := strconv.ParseInt(v, 10, 64)
		a, has := ing.Annotations["nginx.ingress.kubernetes.io/proxy-body-size"]
		limit := int64(1 << 20) // ingress-nginx's default
		if has && a != "" {
			n, err := nginxSize(a)
			if err != nil {
				probs = append(probs, fmt.Sprintf("Ingress %s: proxy-body-size: %v", ing.Name, err))
			}
			limit = n
			if n == 0 {
				limit = max // 0 means unlimited
			}
		}
		if limit < max {
			probs = append(probs, fmt.Sprintf("Ingress %s: the controller refuses bodies over %d bytes, gc-webhook accepts %d (WEBHOOK_MAX_BODY_BYTES)", ing.Name, limit, max))
		}
	}
	return probs
}

// checkConsoleIngress holds the console's Ingress to TLS on every host and
// to the console's own listener (CONSOLE_ADDR), nothing else.
func checkConsoleIngress(w *world, ing *networkingv1.Ingress) (probs []string) {
	ls, _ := w.listeners("console")
	port, ok := ls["CONSOLE_ADDR"]
	if !ok {
		return []string{"console does not read CONSOLE_ADDR"}
	}
	hosts := map[string]bool{}
	for _, tls := range ing.Spec.TLS {
		for _, h := range tls.Hosts {
			hosts[h] = true
		}
	}
	wl, okWL := w.c.workload("console")
	s := w.c.service("console")
	for _, r := range ing.Spec.Rules {
		if !hosts[r.Host] {
			probs = append(probs, fmt.Sprintf("Ingress %s: host %q is not covered by TLS", ing.Name, r.Host))
		}
		if r.HTTP == nil {
			continue
		}
		for _, p := range r.HTTP.Paths {
			b := p.Backend.Service
			if b == nil || b.Name != "console" || s == nil || !okWL {
				probs = append(probs, fmt.Sprintf("Ingress %s: path %s goes to %v, want Service console", ing.Name, p.Path, b))
				continue
			}
			reached := false
			for _, sp := range s.Spec.Ports {
				if (b.Port.Name != "" && sp.Name == b.Port.Name) || (b.Port.Number != 0 && sp.Port == b.Port.Number) {
					n, ok := podPort(&wl.Template.Spec, sp.TargetPort)
					reached = ok && n == port
				}
			}
			if !reached {
				probs = append(probs, fmt.Sprintf("Ingress %s: backend port %v does not reach CONSOLE_ADDR's port %d", ing.Name, b.Port, port))
			}
		}
	}
	return probs
}

func prefix(p string, list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = p + s
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := slices.Collect(maps.Keys(m))
	sort.Strings(keys)
	return keys
}

func ptrStr[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

// parseSeconds reads a Go duration as whole seconds, rounded up.
func parseSeconds(v string) (int64, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, err
	}
	return int64((d + time.Second - 1) / time.Second), nil
}

// nginxSize reads an nginx size ("2m", "512k", "1g", plain bytes).
func nginxSize(v string) (int64, error) {
	mult := int64(1)
	switch strings.ToLower(v[len(v)-1:]) {
	case "k":
		mult = 1 << 10
	case "m":
		mult = 1 << 20
	case "g":
		mult = 1 << 30
	}
	if mult != 1 {
		v = v[:len(v)-1]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not an nginx size", v)
	}
	return n * mult, nil
}
