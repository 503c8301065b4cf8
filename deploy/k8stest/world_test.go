package k8stest

import (
	"fmt"
	"go/constant"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing/fstest"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// world is what the rules look at: one rendered overlay, the services found
// in services/ with what each reads, and the deployment README.
type world struct {
	overlay  string
	c        *cluster
	services []string
	reads    map[string]reads
	readme   string
}

// sources is what the repository's Go code says.
type sources struct {
	services []string
	reads    map[string]reads
}

func loadSources(fsys fs.FS) (*sources, error) {
	tree, err := newSourceTree(fsys)
	if err != nil {
		return nil, err
	}
	svcs, err := serviceDirs(fsys)
	if err != nil {
		return nil, err
	}
	s := &sources{services: svcs, reads: map[string]reads{}}
	for _, svc := range svcs {
		r, err := tree.programReads(path.Join("services", svc))
		if err != nil {
			return nil, fmt.Errorf("services/%s: %w", svc, err)
		}
		s.reads[svc] = r
	}
	return s, nil
}

var repoSources = sync.OnceValues(func() (*sources, error) { return loadSources(os.DirFS(repoRoot)) })

// readmePath is where the deployment instructions live, relative to repoRoot.
const readmePath = "deploy/README.md"

// overlayFS is base with the files of extra added or replacing base's.
type overlayFS struct {
	base  fs.FS
	extra fstest.MapFS
}

func (o overlayFS) Open(name string) (fs.File, error) {
	if _, ok := o.extra[name]; ok {
		return o.extra.Open(name)
	}
	return o.base.Open(name)
}

// ReadDir merges the listings, so added directories show up.
func (o overlayFS) ReadDir(name string) ([]fs.DirEntry, error) {
	base, errBase := fs.ReadDir(o.base, name)
	extra, errExtra := fs.ReadDir(o.extra, name)
	if errBase != nil && errExtra != nil {
		return nil, errBase
	}
	seen := map[string]bool{}
	var out []fs.DirEntry
	for _, e := range append(extra, base...) {
		if !seen[e.Name()] {
			seen[e.Name()] = true
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// container returns the container named name in w's pod template.
func (w workload) container(name string) *corev1.Container {
	for i := range w.Template.Spec.Containers {
		if c := &w.Template.Spec.Containers[i]; c.Name == name {
			return c
		}
	}
	return nil
}

// envValue is where one environment variable of a container comes from.
type envValue struct {
	Value  string // when Known
	Known  bool   // a literal or a ConfigMap value
	From   string // for messages: "value", "ConfigMap x", "Secret y"
	Secret *corev1.SecretKeySelector
}

// containerEnv resolves a container's environment as the kubelet would:
// envFrom first, then env, later entries winning.
func (c *cluster) containerEnv(ctr *corev1.Container) (map[string]envValue, []string) {
	env := map[string]envValue{}
	var probs []string
	for _, src := range ctr.EnvFrom {
		switch {
		case src.ConfigMapRef != nil:
			cm := c.configMap(src.ConfigMapRef.Name)
			if cm == nil {
				if src.ConfigMapRef.Optional == nil || !*src.ConfigMapRef.Optional {
					probs = append(probs, fmt.Sprintf("container %s: envFrom ConfigMap %q does not exist", ctr.Name, src.ConfigMapRef.Name))
				}
				continue
			}
			for k, v := range cm.Data {
				env[src.Prefix+k] = envValue{Value: v, Known: true, From: "ConfigMap " + cm.Name}
			}
		case src.SecretRef != nil:
			// Every key would become a variable, unseen here and unchecked.
			probs = append(probs, fmt.Sprintf("container %s: envFrom Secret %q: name each secret variable with secretKeyRef instead", ctr.Name, src.SecretRef.Name))
		}
	}
	for _, e := range ctr.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = envValue{Value: e.Value, Known: true, From: "value"}
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = envValue{From: "Secret " + e.ValueFrom.SecretKeyRef.Name, Secret: e.ValueFrom.SecretKeyRef}
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm := c.configMap(ref.Name)
			v, ok := "", false
			if cm != nil {
				v, ok = cm.Data[ref.Key]
			}
			if !ok && (ref.Optional == nil || !*ref.Optional) {
				probs = append(probs, fmt.Sprintf("container %s: %s from ConfigMap %s key %s, which does not exist", ctr.Name, e.Name, ref.Name, ref.Key))
			}
			env[e.Name] = envValue{Value: v, Known: ok, From: "ConfigMap " + ref.Name}
		default:
			env[e.Name] = envValue{From: "fieldRef"}
		}
	}
	return env, probs
}

// svc returns the Deployment and container of a service.
func (w *world) svc(name string) (workload, *corev1.Container, error) {
	wl, ok := w.c.workload(name)
	if !ok {
		return wl, nil, fmt.Errorf("%s: no Deployment", name)
	}
	ctr := wl.container(name)
	if ctr == nil {
		return wl, nil, fmt.Errorf("%s: no container named %s", wl, name)
	}
	return wl, ctr, nil
}

// effective is the value a service sees for a setting: the manifest's, or
// the default in its source. ok is false when neither is known.
func (w *world) effective(svc, name string) (string, bool) {
	_, ctr, err := w.svc(svc)
	if err != nil {
		return "", false
	}
	env, _ := w.c.containerEnv(ctr)
	if v, set := env[name]; set {
		return v.Value, v.Known
	}
	s, read := w.reads[svc].Settings[name]
	if !read || s.Def == nil {
		return "", false
	}
	switch s.Def.Kind() {
	case constant.String:
		return constant.StringVal(s.Def), true
	case constant.Int:
		if s.Method == "Duration" {
			n, _ := constant.Int64Val(s.Def)
			return fmtDuration(n), true
		}
		return s.Def.ExactString(), true
	case constant.Bool:
		return strconv.FormatBool(constant.BoolVal(s.Def)), true
	}
	return "", false
}

func fmtDuration(ns int64) string { return time.Duration(ns).String() }

// inRange reports whether n lies within the bounds of an IntRange or
// DurationRange read (always true for reads without bounds).
func inRange(s setting, n int64) bool {
	if s.Min != nil && s.Min.Kind() == constant.Int {
		if lo, ok := constant.Int64Val(s.Min); ok && n < lo {
			return false
		}
	}
	if s.Max != nil && s.Max.Kind() == constant.Int {
		if hi, ok := constant.Int64Val(s.Max); ok && n > hi {
			return false
		}
	}
	return true
}

func fmtBound(v constant.Value) string {
	if v == nil || v.Kind() != constant.Int {
		return "?"
	}
	n, _ := constant.Int64Val(v)
	return fmtDuration(n)
}

// listeners are a service's listen addresses: settings read with Addr whose
// default in the source has no host (":8080"), as opposed to addresses it
// dials ("127.0.0.1:9090"). The result maps setting name to port.
func (w *world) listeners(svc string) (map[string]int32, []string) {
	out := map[string]int32{}
	var probs []string
	for name, s := range w.reads[svc].Settings {
		if s.Method != "Addr" || s.DefString() == "" {
			continue
		}
		if host, _, err := net.SplitHostPort(s.DefString()); err != nil || host != "" {
			continue
		}
		v, _ := w.effective(svc, name)
		host, port, err := net.SplitHostPort(v)
		if err != nil {
			probs = append(probs, fmt.Sprintf("%s: %s=%q is not host:port", svc, name, v))
			continue
		}
		if host != "" && host != "0.0.0.0" && host != "::" {
			probs = append(probs, fmt.Sprintf("%s: %s=%q listens on %s only; probes and peers could not reach it", svc, name, v, host))
		}
		n, err := strconv.ParseInt(port, 10, 32)
		if err != nil || n <= 0 {
			probs = append(probs, fmt.Sprintf("%s: %s=%q needs a fixed port in a pod", svc, name, v))
			continue
		}
		out[name] = int32(n)
	}
	return out, probs
}

// portNumber resolves a probe or Service target port against a container.
func portNumber(ctr *corev1.Container, p intstr.IntOrString) (int32, bool) {
	if p.Type == intstr.Int {
		return p.IntVal, true
	}
	for _, cp := range ctr.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

// podPort resolves a Service target port against every container of a pod.
func podPort(spec *corev1.PodSpec, p intstr.IntOrString) (int32, bool) {
	for i := range spec.Containers {
		ctr := &spec.Containers[i]
		if n, ok := portNumber(ctr, p); ok && (p.Type == intstr.String || hasPort(ctr, n)) {
			return n, true
		}
	}
	return 0, false
}

func hasPort(ctr *corev1.Container, n int32) bool {
	return slices.ContainsFunc(ctr.Ports, func(cp corev1.ContainerPort) bool { return cp.ContainerPort == n })
}

// selects reports whether a Service selector picks a pod with these labels.
func selects(selector, podLabels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if podLabels[k] != v {
			return false
		}
	}
	return true
}

// serviceBackends returns the workloads a Service sends traffic to.
func (c *cluster) serviceBackends(s *corev1.Service) []workload {
	var out []workload
	for _, wl := range c.workloads() {
		if selects(s.Spec.Selector, wl.Template.Labels) {
			out = append(out, wl)
		}
	}
	return out
}

// resolveDial checks that a host:port dialled from inside the namespace
// reaches the Service named want and, through it, container port
// wantPort of its pods.
func (c *cluster) resolveDial(host, port, want string, wantPort int32) error {
	name, rest, _ := strings.Cut(host, ".")
	ns := ""
	if len(c.Namespaces) == 1 {
		ns = c.Namespaces[0].Name
	}
	switch rest {
	case "", ns, ns + ".svc", ns + ".svc.cluster.local":
	default:
		return fmt.Errorf("host %q is not a Service of namespace %s", host, ns)
	}
	if name != want {
		return fmt.Errorf("host %q is not Service %s", host, want)
	}
	s := c.service(name)
	if s == nil {
		return fmt.Errorf("Service %s does not exist", name)
	}
	n, err := strconv.ParseInt(port, 10, 32)
	if err != nil {
		return fmt.Errorf("port %q is not a number", port)
	}
	backends := c.serviceBackends(s)
	if len(backends) != 1 {
		return fmt.Errorf("Service %s selects %d workloads, want 1", name, len(backends))
	}
	for _, sp := range s.Spec.Ports {
		if sp.Port != int32(n) {
			continue
		}
		target := sp.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(sp.Port)
		}
		got, ok := podPort(&backends[0].Template.Spec, target)
		if !ok {
			return fmt.Errorf("Service %s port %d targets %s, which %s does not expose", name, n, target.String(), backends[0])
		}
		if got != wantPort {
			return fmt.Errorf("Service %s port %d reaches container port %d, want %d", name, n, got, wantPort)
		}
		return nil
	}
	return fmt.Errorf("Service %s has no port %d", name, n)
}

// checkValue validates a manifest value as the service's config.Env would.
func checkValue(s setting, v string) error {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil // unset: the default applies
	}
	switch s.Method {
	case "Int":
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
		if !inRange(s, int64(n)) {
			return fmt.Errorf("%q is out of range (%s to %s)", v, s.Min, s.Max)
		}
	case "Duration":
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("%q is not a duration", v)
		}
		if !inRange(s, int64(d)) {
			return fmt.Errorf("%q is out of range (%s to %s)", v, fmtBound(s.Min), fmtBound(s.Max))
		}
	case "Bool":
		if !slices.Contains([]string{"1", "t", "true", "yes", "y", "on", "0", "f", "false", "no", "n", "off"}, strings.ToLower(v)) {
			return fmt.Errorf("%q is not a boolean", v)
		}
	case "OneOf":
		if !slices.ContainsFunc(s.Allowed, func(a string) bool { return strings.EqualFold(a, v) }) {
			return fmt.Errorf("%q is not one of %v", v, s.Allowed)
		}
	case "Addr":
		if _, p, err := net.SplitHostPort(v); err != nil || p == "" {
			return fmt.Errorf("%q is not host:port", v)
		}
	case "URL", "SecretURL":
		return checkURL(v)
	case "postgres":
		if strings.Contains(v, "://") {
			return checkURL(v)
		}
	case "URLList":
		for item := range strings.SplitSeq(v, ",") {
			if err := checkURL(strings.TrimSpace(item)); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", v)
	}
	return nil
}

// isLoopback reports whether a default address or URL points at the
// process's own machine, which in a pod is never where the dependency is.
func isLoopback(def string) bool {
	host := def
	if u, err := url.Parse(def); err == nil && u.Host != "" {
		host = u.Host
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
