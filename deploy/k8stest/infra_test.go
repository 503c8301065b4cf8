package k8stest

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/ml-connector/ml-connector/platform/testsupport"
	"github.com/nats-io/nats-server/v2/server"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// configFile finds the file a container reads its configuration from: the
// flag's argument, mounted from a ConfigMap. It returns the file's content.
func (c *cluster) configFile(wl workload, ctr *corev1.Container, flag string) (string, error) {
	file, data, err := c.mountedConfig(wl, ctr, flag)
	if err != nil {
		return "", err
	}
	return data[path.Base(file)], nil
}

// mountedConfig is configFile's file path and every key of the ConfigMap
// it is mounted from (files the configuration may include).
func (c *cluster) mountedConfig(wl workload, ctr *corev1.Container, flag string) (string, map[string]string, error) {
	file := ""
	for i, a := range ctr.Args {
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			file = v
		} else if a == flag && i+1 < len(ctr.Args) {
			file = ctr.Args[i+1]
		}
	}
	if file == "" {
		return "", nil, fmt.Errorf("%s: container %s has no %s argument", wl, ctr.Name, flag)
	}
	for _, m := range ctr.VolumeMounts {
		if path.Dir(file) != path.Clean(m.MountPath) {
			continue
		}
		for _, v := range wl.Template.Spec.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			cm := c.configMap(v.ConfigMap.Name)
			if cm == nil {
				return "", nil, fmt.Errorf("%s: ConfigMap %s does not exist", wl, v.ConfigMap.Name)
			}
			if _, ok := cm.Data[path.Base(file)]; !ok {
				return "", nil, fmt.Errorf("%s: ConfigMap %s has no key %s", wl, cm.Name, path.Base(file))
			}
			return file, cm.Data, nil
		}
	}
	return "", nil, fmt.Errorf("%s: %s is not in a volume mounted from a ConfigMap", wl, file)
}

// natsEnvMu serialises parsing NATS configurations: the parser resolves
// $VARIABLES from the process environment.
var natsEnvMu sync.Mutex

// natsOptions parses the NATS configuration of pod ordinal 0 with the real
// nats-server parser and validates it the way the server does at start.
func (c *cluster) natsOptions(wl workload, ctr *corev1.Container) (*server.Options, error) {
	dir, err := os.MkdirTemp("", "nats-conf")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	return c.natsOptionsIn(wl, ctr, dir, testPassword)
}

// testPassword is what a secretKeyRef of the NATS container resolves to
// in these checks.
func testPassword(ref *corev1.SecretKeySelector) string { return "test-" + ref.Name + "-" + ref.Key }

// natsOptionsIn is natsOptions with the pod's files laid out under dir:
// the ConfigMap's keys in dir/config, each Secret volume in dir/<volume>
// (a fresh CA and certificate, as cert-manager would write them), the
// configuration's paths moved there. Secret variables get secret(ref).
func (c *cluster) natsOptionsIn(wl workload, ctr *corev1.Container, dir string, secret func(*corev1.SecretKeySelector) string) (*server.Options, error) {
	file, data, err := c.mountedConfig(wl, ctr, "--config")
	if err != nil {
		return nil, err
	}
	moves := map[string]string{}
	for _, m := range ctr.VolumeMounts {
		for _, v := range wl.Template.Spec.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				d := filepath.Join(dir, v.Name)
				if err := testsupport.WriteTLSFiles(d, "nats", "*.nats-headless", "localhost", "127.0.0.1"); err != nil {
					return nil, err
				}
				moves[path.Clean(m.MountPath)] = d
			}
		}
	}
	cdir := filepath.Join(dir, "config")
	if err := os.MkdirAll(cdir, 0o700); err != nil {
		return nil, err
	}
	for k, v := range data {
		for from, to := range moves {
			v = strings.ReplaceAll(v, from+"/", to+"/")
		}
		if err := os.WriteFile(filepath.Join(cdir, k), []byte(v), 0o600); err != nil {
			return nil, err
		}
	}
	natsEnvMu.Lock()
	defer natsEnvMu.Unlock()
	env := map[string]string{}
	for _, e := range ctr.Env {
		v := e.Value
		switch {
		case e.ValueFrom == nil:
			// $(VAR) refers to a variable defined before, as the kubelet
			// expands it.
			for k, val := range env {
				v = strings.ReplaceAll(v, "$("+k+")", val)
			}
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			v = wl.Name + "-0"
		case e.ValueFrom.SecretKeyRef != nil:
			v = secret(e.ValueFrom.SecretKeyRef)
		case e.ValueFrom.ResourceFieldRef != nil:
			v = "1073741824"
		}
		env[e.Name] = v
		old, had := os.LookupEnv(e.Name)
		os.Setenv(e.Name, v)
		defer func() {
			if had {
				os.Setenv(e.Name, old)
			} else {
				os.Unsetenv(e.Name)
			}
		}()
	}
	opts, err := server.ProcessConfigFile(filepath.Join(cdir, path.Base(file)))
	if err != nil {
		return nil, fmt.Errorf("nats configuration: %w", err)
	}
	// NewServer validates the options as a start would, without listening.
	check := opts.Clone()
	check.NoLog, check.NoSigs = true, true
	if _, err := server.NewServer(check); err != nil {
		return nil, fmt.Errorf("nats configuration: %w", err)
	}
	return opts, nil
}

func (c *cluster) nats() (workload, *corev1.Container, error) {
	for _, s := range c.StatefulSets {
		if s.Name == "nats" {
			wl, _ := c.workload("nats")
			ctr := wl.container("nats")
			if ctr == nil {
				return wl, nil, fmt.Errorf("statefulset/nats has no container nats")
			}
			return wl, ctr, nil
		}
	}
	return workload{}, nil, fmt.Errorf("no StatefulSet nats")
}

func natsClientPort(w *world) (int32, error) {
	wl, ctr, err := w.c.nats()
	if err != nil {
		return 0, err
	}
	opts, err := w.c.natsOptions(wl, ctr)
	if err != nil {
		return 0, err
	}
	return int32(opts.Port), nil
}

func checkNATS(w *world) (probs []string) {
	wl, ctr, err := w.c.nats()
	if err != nil {
		return []string{err.Error()}
	}
	sts := w.c.StatefulSets[slices.IndexFunc(w.c.StatefulSets, func(s *appsv1.StatefulSet) bool { return s.Name == "nats" })]
	opts, err := w.c.natsOptions(wl, ctr)
	if err != nil {
		return []string{err.Error()}
	}
	nodes := int(w.minReplicas(wl))
	if want := perOverlay[w.overlay]; nodes != want.natsNodes {
		probs = append(probs, fmt.Sprintf("nats: %d nodes, want %d in %s", nodes, want.natsNodes, w.overlay))
	}
	if nodes > 1 && sts.Spec.PodManagementPolicy != "Parallel" {
		probs = append(probs, "nats: podManagementPolicy must be Parallel; a JetStream cluster needs its peers up before any node is ready")
	}
	if !opts.JetStream {
		probs = append(probs, "nats: JetStream is not enabled")
	}

	// Ports: what the server listens on is what the pod and Services say.
	portOf := func(name string) int32 {
		n, _ := portNumber(ctr, intstr.FromString(name))
		return n
	}
	if int32(opts.Port) != portOf("client") {
		probs = append(probs, fmt.Sprintf("nats: listens for clients on %d, container port client is %d", opts.Port, portOf("client")))
	}
	if int32(opts.HTTPPort) != portOf("monitor") {
		probs = append(probs, fmt.Sprintf("nats: monitoring on %d, container port monitor is %d", opts.HTTPPort, portOf("monitor")))
	}

	// Storage: JetStream writes to the pod's own persistent volume, and
	// is told to stay below its size.
	var claim *corev1.PersistentVolumeClaim
	for _, m := range ctr.VolumeMounts {
		if opts.StoreDir == m.MountPath || strings.HasPrefix(opts.StoreDir, strings.TrimSuffix(m.MountPath, "/")+"/") {
			for i := range sts.Spec.VolumeClaimTemplates {
				if sts.Spec.VolumeClaimTemplates[i].Name == m.Name {
					claim = &sts.Spec.VolumeClaimTemplates[i]
				}
			}
		}
	}
	if claim == nil {
		probs = append(probs, fmt.Sprintf("nats: JetStream store_dir %q is not on a volume from volumeClaimTemplates", opts.StoreDir))
	} else {
		size := claim.Spec.Resources.Requests[corev1.ResourceStorage]
		if opts.JetStreamMaxStore <= 0 || opts.JetStreamMaxStore > size.Value() {
			probs = append(probs, fmt.Sprintf("nats: max_file_store %d must be set and fit the %s volume", opts.JetStreamMaxStore, size.String()))
		}
	}

	// Cluster: one route per pod, by its stable name under the headless
	// Service, on the cluster port; the headless Service publishes pods
	// before they are ready so the routes can form.
	hs := w.c.service(sts.Spec.ServiceName)
	switch {
	case hs == nil:
		probs = append(probs, fmt.Sprintf("nats: serviceName %q is not a Service", sts.Spec.ServiceName))
	case hs.Spec.ClusterIP != corev1.ClusterIPNone || !hs.Spec.PublishNotReadyAddresses:
		probs = append(probs, fmt.Sprintf("nats: Service %s must be headless and publish not-ready addresses", hs.Name))
	}
	var want, got []string
	for i := range nodes {
		want = append(want, fmt.Sprintf("%s-%d.%s:%d", sts.Name, i, sts.Spec.ServiceName, opts.Cluster.Port))
	}
	for _, u := range opts.Routes {
		got = append(got, u.Host)
	}
	slices.Sort(got)
	if nodes > 1 {
		if opts.Cluster.Name == "" || int32(opts.Cluster.Port) != portOf("cluster") {
			probs = append(probs, fmt.Sprintf("nats: cluster port %d, container port cluster %d; cluster name %q", opts.Cluster.Port, portOf("cluster"), opts.Cluster.Name))
		}
		if !slices.Equal(got, want) {
			probs = append(probs, fmt.Sprintf("nats: routes %v, want one per pod %v", got, want))
		}
	} else if len(got) > 0 {
		probs = append(probs, fmt.Sprintf("nats: a single node with routes %v", got))
	}

	// Streams cannot have more replicas than there are nodes.
	for _, svc := range w.services {
		v, ok := w.effective(svc, "NATS_STREAM_REPLICAS")
		n, err := strconv.Atoi(v)
		if !ok || err != nil {
			probs = append(probs, fmt.Sprintf("%s: NATS_STREAM_REPLICAS unknown (%q)", svc, v))
			continue
		}
		if n > nodes {
			probs = append(probs, fmt.Sprintf("%s: NATS_STREAM_REPLICAS=%d but NATS has %d nodes", svc, n, nodes))
		}
		if want := perOverlay[w.overlay].streamReplicas; n != want {
			probs = append(probs, fmt.Sprintf("%s: NATS_STREAM_REPLICAS=%d, want %d in %s", svc, n, want, w.overlay))
		}
	}

	grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if g := wl.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	if ld := opts.LameDuckDuration + opts.LameDuckGracePeriod; ld.Seconds() >= float64(grace) {
		probs = append(probs, fmt.Sprintf("nats: lame duck mode takes %s, beyond terminationGracePeriodSeconds %d", ld, grace))
	}
	return probs
}

// collectorConfig is the part of the OpenTelemetry Collector configuration
// the rules look at.
type collectorConfig struct {
	Receivers  map[string]any `json:"receivers"`
	Processors map[string]any `json:"processors"`
	Exporters  map[string]any `json:"exporters"`
	Extensions map[string]any `json:"extensions"`
	Service    struct {
		Extensions []string `json:"extensions"`
		Pipelines  map[string]struct {
			Receivers  []string `json:"receivers"`
			Processors []string `json:"processors"`
			Exporters  []string `json:"exporters"`
		} `json:"pipelines"`
		Telemetry any `json:"telemetry"`
	} `json:"service"`
	Connectors map[string]any `json:"connectors"`
}

func (c *cluster) collector() (workload, *corev1.Container, *collectorConfig, error) {
	wl, ok := c.workload("otel-collector")
	if !ok {
		return wl, nil, nil, fmt.Errorf("no Deployment otel-collector")
	}
	ctr := wl.container("otel-collector")
	if ctr == nil {
		return wl, nil, nil, fmt.Errorf("%s has no container otel-collector", wl)
	}
	data, err := c.configFile(wl, ctr, "--config")
	if err != nil {
		return wl, ctr, nil, err
	}
	cfg := new(collectorConfig)
	if err := yaml.UnmarshalStrict([]byte(data), cfg); err != nil {
		return wl, ctr, nil, fmt.Errorf("otel-collector configuration: %w", err)
	}
	return wl, ctr, cfg, nil
}

// endpointPort reads receivers.otlp.protocols.<proto>.endpoint, which must
// listen on every interface (the collector's default is localhost only).
func (cfg *collectorConfig) endpointPort(proto string) (int32, error) {
	otlp, _ := cfg.Receivers["otlp"].(map[string]any)
	protocols, _ := otlp["protocols"].(map[string]any)
	p, ok := protocols[proto].(map[string]any)
	if !ok {
		return 0, fmt.Errorf("otel-collector: the otlp receiver does not accept %s", proto)
	}
	ep, _ := p["endpoint"].(string)
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return 0, fmt.Errorf("otel-collector: otlp %s endpoint %q: %v", proto, ep, err)
	}
	if host != "0.0.0.0" && host != "::" && host != "" && !strings.HasPrefix(host, "${env:") {
		return 0, fmt.Errorf("otel-collector: otlp %s listens on %s only; pods could not reach it", proto, host)
	}
	n, err := strconv.ParseInt(port, 10, 32)
	return int32(n), err
}

func collectorGRPCPort(w *world) (int32, error) {
	_, _, cfg, err := w.c.collector()
	if err != nil {
		return 0, err
	}
	return cfg.endpointPort("grpc")
}

func checkCollector(w *world) (probs []string) {
	wl, ctr, cfg, err := w.c.collector()
	if err != nil {
		return []string{err.Error()}
	}
	svc := w.c.service("otel-collector")
	if svc == nil {
		return []string{"no Service otel-collector"}
	}
	for _, proto := range []string{"grpc", "http"} {
		port, err := cfg.endpointPort(proto)
		if err != nil {
			probs = append(probs, err.Error())
			continue
		}
		if !hasPort(ctr, port) {
			probs = append(probs, fmt.Sprintf("otel-collector: OTLP/%s port %d is not a container port", proto, port))
		}
		reached := slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool {
			n, ok := podPort(&wl.Template.Spec, sp.TargetPort)
			return ok && n == port
		})
		if !reached {
			probs = append(probs, fmt.Sprintf("Service otel-collector does not reach OTLP/%s port %d", proto, port))
		}
	}
	for _, kind := range []string{"traces", "metrics"} {
		if _, ok := cfg.Service.Pipelines[kind]; !ok {
			probs = append(probs, fmt.Sprintf("otel-collector: no %s pipeline", kind))
		}
	}
	for name, p := range cfg.Service.Pipelines {
		if !slices.Contains(p.Receivers, "otlp") {
			probs = append(probs, fmt.Sprintf("otel-collector: pipeline %s does not receive otlp", name))
		}
		if !slices.Contains(p.Exporters, "debug") {
			probs = append(probs, fmt.Sprintf("otel-collector: pipeline %s does not export to debug (the default)", name))
		}
		for _, pair := range []struct {
			kind    string
			used    []string
			defined map[string]any
		}{{"receiver", p.Receivers, cfg.Receivers}, {"processor", p.Processors, cfg.Processors}, {"exporter", p.Exporters, cfg.Exporters}} {
			for _, u := range pair.used {
				if _, ok := pair.defined[u]; !ok {
					probs = append(probs, fmt.Sprintf("otel-collector: pipeline %s uses %s %s, which is not defined", name, pair.kind, u))
				}
			}
		}
	}
	// The probes ask the health_check extension.
	hc, _ := cfg.Extensions["health_check"].(map[string]any)
	ep, _ := hc["endpoint"].(string)
	_, port, _ := net.SplitHostPort(ep)
	if !slices.Contains(cfg.Service.Extensions, "health_check") || port == "" {
		probs = append(probs, "otel-collector: the health_check extension is not enabled with an endpoint")
	} else {
		for kind, p := range map[string]*corev1.Probe{"liveness": ctr.LivenessProbe, "readiness": ctr.ReadinessProbe} {
			if p == nil || p.HTTPGet == nil {
				continue
			}
			if n, ok := portNumber(ctr, p.HTTPGet.Port); !ok || strconv.Itoa(int(n)) != port {
				probs = append(probs, fmt.Sprintf("otel-collector: %s probe on %s, health_check listens on %s", kind, p.HTTPGet.Port.String(), port))
			}
		}
	}
	return probs
}

// Endpoints outside the namespace, for the flow checks. The addresses are
// documentation ranges (RFC 5737) and a private one for Postgres.
var (
	internet       = endpoint{Name: "internet", IP: netip.MustParseAddr("203.0.113.7")}
	postgres       = endpoint{Name: "postgres", IP: netip.MustParseAddr("10.20.0.5")}
	gocardless     = endpoint{Name: "gocardless", IP: netip.MustParseAddr("198.51.100.10")}
	erpHost        = endpoint{Name: "ifs/jde", IP: netip.MustParseAddr("198.51.100.20")}
	ingressNginx   = podIn("ingress-nginx", "ingress-controller", map[string]string{labelName: "ingress-nginx"})
	ingressNSOther = podIn("ingress-nginx", "other pod of the ingress namespace", map[string]string{labelName: "cert-manager-solver"})
	kubeDNS        = podIn("kube-system", "kube-dns", map[string]string{"k8s-app": "kube-dns"})
	prometheus     = podIn("monitoring", "prometheus", map[string]string{labelName: "prometheus"})
	stranger       = podIn("default", "pod of another namespace", map[string]string{"app": "stranger"})
)

func podIn(ns, name string, l map[string]string) endpoint {
	return endpoint{Name: name, Namespace: ns, NSLabels: map[string]string{"kubernetes.io/metadata.name": ns}, Labels: l}
}

// flow is a connection the policies must allow or refuse. Destination
// ports are numbers, or container port names of the destination pod.
type flow struct {
	from, to string
	port     string
	proto    corev1.Protocol
	allow    bool
}

// designFlows are the flows of DESIGN.md (allowed) and the ones a wrong
// policy would let through (refused). "service" expands to every service.
var designFlows = []flow{
	{"ingress-controller", "gc-webhook", "webhook", "TCP", true},
	{"prometheus", "service", "http", "TCP", true},
	{"service", "nats", "client", "TCP", true},
	{"service", "postgres", "5432", "TCP", true},
	{"service", "otel-collector", "otlp-grpc", "TCP", true},
	{"service", "kube-dns", "53", "UDP", true},
	{"service", "kube-dns", "53", "TCP", true},
	{"nats", "nats", "cluster", "TCP", true},
	{"prometheus", "nats", "metrics", "TCP", true},
	{"prometheus", "nats", "monitor", "TCP", false},
	{"prometheus", "nats", "client", "TCP", false},
	{"nats", "kube-dns", "53", "UDP", true},
	{"otel-collector", "kube-dns", "53", "UDP", true},
	{"ifs-poller", "ifs/jde", "443", "TCP", true},
	{"jde-poller", "ifs/jde", "443", "TCP", true},
	{"payment-orchestrator", "gocardless", "443", "TCP", true},
	{"payment-orchestrator", "erp-poster", "grpc", "TCP", true},
	{"erp-poster", "ifs/jde", "443", "TCP", true},

	{"internet", "gc-webhook", "webhook", "TCP", false},
	{"pod of another namespace", "gc-webhook", "webhook", "TCP", false},
	{"other pod of the ingress namespace", "gc-webhook", "webhook", "TCP", false},
	{"ingress-controller", "gc-webhook", "http", "TCP", false},
	{"ingress-controller", "payment-orchestrator", "http", "TCP", false},
	{"ingress-controller", "erp-poster", "grpc", "TCP", false},
	{"pod of another namespace", "service", "http", "TCP", false},
	{"prometheus", "erp-poster", "grpc", "TCP", false},
	{"gc-webhook", "gocardless", "443", "TCP", false},
	{"gc-webhook", "erp-poster", "grpc", "TCP", false},
	{"ifs-poller", "erp-poster", "grpc", "TCP", false},
	{"jde-poller", "gocardless", "80", "TCP", false},
	{"erp-poster", "payment-orchestrator", "http", "TCP", false},
	{"service", "internet", "80", "TCP", false},
	{"service", "internet", "22", "TCP", false},
	{"service", "nats", "cluster", "TCP", false},
	{"service", "nats", "monitor", "TCP", false},
	{"pod of another namespace", "nats", "client", "TCP", false},
	{"pod of another namespace", "otel-collector", "otlp-grpc", "TCP", false},
	{"nats", "internet", "443", "TCP", false},
	{"nats", "postgres", "5432", "TCP", false},
	{"otel-collector", "internet", "443", "TCP", false},
	{"otel-collector", "nats", "client", "TCP", false},
}

func checkNetworkPolicies(w *world) (probs []string) {
	ns := ""
	if len(w.c.Namespaces) == 1 {
		ns = w.c.Namespaces[0].Name
	}
	eps := map[string]endpoint{}
	for _, e := range []endpoint{internet, postgres, gocardless, erpHost, ingressNginx, ingressNSOther, kubeDNS, prometheus, stranger} {
		eps[e.Name] = e
	}
	for _, wl := range w.c.workloads() {
		var ports []corev1.ContainerPort
		for _, ctr := range wl.Template.Spec.Containers {
			ports = append(ports, ctr.Ports...)
		}
		e := podIn(ns, wl.Name, wl.Template.Labels)
		e.Ports = ports
		eps[wl.Name] = e
	}
	expand := func(name string) []string {
		if name == "service" {
			return w.services
		}
		return []string{name}
	}
	for _, f := range designFlows {
		for _, from := range expand(f.from) {
			for _, to := range expand(f.to) {
				src, ok1 := eps[from]
				dst, ok2 := eps[to]
				if !ok1 || !ok2 {
					probs = append(probs, fmt.Sprintf("flow %s -> %s: no such workload", from, to))
					continue
				}
				port, err := strconv.ParseInt(f.port, 10, 32)
				if err != nil {
					i := slices.IndexFunc(dst.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == f.port })
					if i < 0 {
						probs = append(probs, fmt.Sprintf("flow %s -> %s: %s has no port %s", from, to, to, f.port))
						continue
					}
					port = int64(dst.Ports[i].ContainerPort)
				}
				ok, err := flowAllowed(w.c.NetworkPolicies, src, dst, int32(port), f.proto)
				switch {
				case err != nil:
					probs = append(probs, err.Error())
				case ok && !f.allow:
					probs = append(probs, fmt.Sprintf("network policies let %s reach %s on %s/%d; they must not", from, to, f.proto, port))
				case !ok && f.allow:
					probs = append(probs, fmt.Sprintf("network policies stop %s reaching %s on %s/%d; the design needs it", from, to, f.proto, port))
				}
			}
		}
	}
	return probs
}
