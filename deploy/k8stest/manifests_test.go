package k8stest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func realWorld(t *testing.T, overlay string) *world {
	t.Helper()
	r := renderedOnDisk()[overlay]
	if r.err != nil {
		t.Fatal(r.err)
	}
	src, err := repoSources()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(repoRoot, readmePath))
	if err != nil {
		t.Fatal(err)
	}
	return &world{overlay: overlay, c: r.c, services: src.services, reads: src.reads, readme: string(readme)}
}

// TestManifests renders every overlay and holds it to every rule.
func TestManifests(t *testing.T) {
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			w := realWorld(t, overlay)
			for _, r := range rules {
				t.Run(r.name, func(t *testing.T) {
					for _, p := range r.check(w) {
						t.Error(p)
					}
				})
			}
		})
	}
}

// TestEveryServiceHasAManifest is the rule most likely to fire when the
// project grows; it is spelled out on its own for a clear failure.
func TestEveryServiceHasAManifest(t *testing.T) {
	src, err := repoSources()
	if err != nil {
		t.Fatal(err)
	}
	if len(src.services) == 0 {
		t.Fatal("no services found under services/")
	}
	for _, overlay := range overlays {
		w := realWorld(t, overlay)
		for _, svc := range src.services {
			if _, _, err := w.svc(svc); err != nil {
				t.Errorf("%s: services/%s: %v", overlay, svc, err)
			}
		}
	}
}

// TestProdOutscalesDev compares the overlays: production runs at least as
// many pods of everything, with at least the requests and limits of
// development, and more of something.
func TestProdOutscalesDev(t *testing.T) {
	dev, prod := realWorld(t, "overlays/dev"), realWorld(t, "overlays/prod")
	morePods, moreResources := false, false
	for _, pw := range prod.c.workloads() {
		dw, ok := dev.c.workload(pw.Name)
		if !ok {
			t.Errorf("%s is in prod but not in dev", pw)
			continue
		}
		pn, dn := prod.minReplicas(pw), dev.minReplicas(dw)
		if pn < dn {
			t.Errorf("%s: prod runs %d pods, dev %d", pw, pn, dn)
		}
		morePods = morePods || pn > dn
		for i, pc := range pw.Template.Spec.Containers {
			dc := dw.Template.Spec.Containers[i]
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				for what, pair := range map[string][2]corev1.ResourceList{
					"request": {pc.Resources.Requests, dc.Resources.Requests},
					"limit":   {pc.Resources.Limits, dc.Resources.Limits},
				} {
					p, d := pair[0][r], pair[1][r]
					if p.Cmp(d) < 0 {
						t.Errorf("%s: prod %s %s %s below dev %s", pw, r, what, p.String(), d.String())
					}
					moreResources = moreResources || p.Cmp(d) > 0
				}
			}
		}
	}
	if !morePods || !moreResources {
		t.Errorf("prod is no bigger than dev (more pods: %v, more resources: %v)", morePods, moreResources)
	}
}

// TestSourcesRead makes sure the source reading finds what the services
// are known to read, so that the env rule is not vacuous: if it found
// nothing, every manifest variable would be reported, but a parser that
// found too much would hide renamed variables.
func TestSourcesRead(t *testing.T) {
	src, err := repoSources()
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range src.services {
		rd := src.reads[svc]
		for _, want := range []struct {
			name, method string
			required     bool
		}{
			{"NATS_URL", "URLList", false},
			{"DATABASE_URL", "postgres", false},
			{"HTTP_ADDR", "Addr", false},
			{"MLC_MASTER_KEY", "RequiredSecret", true},
			{"NATS_STREAM_REPLICAS", "Int", false},
			{"SHUTDOWN_TIMEOUT", "Duration", false},
			{"LOG_LEVEL", "OneOf", false},
		} {
			s, ok := rd.Settings[want.name]
			if !ok {
				t.Errorf("%s: %s not found in its source", svc, want.name)
				continue
			}
			if s.Method != want.method || s.Required() != want.required {
				t.Errorf("%s: %s read with %s (required %v), want %s (required %v)", svc, want.name, s.Method, s.Required(), want.method, want.required)
			}
		}
		if def := rd.Settings["HTTP_ADDR"].DefString(); def != ":8080" {
			t.Errorf("%s: HTTP_ADDR default %q, want :8080", svc, def)
		}
		if lv := rd.Settings["LOG_LEVEL"].Allowed; strings.Join(lv, ",") != "debug,info,warn,error" {
			t.Errorf("%s: LOG_LEVEL allows %v", svc, lv)
		}
		if !rd.OTEL["OTEL_EXPORTER_OTLP_ENDPOINT"] {
			t.Errorf("%s: the telemetry setup's OTEL_EXPORTER_OTLP_ENDPOINT was not found", svc)
		}
		if _, ok := rd.Settings["WEBHOOK_ADDR"]; ok != (svc == "gc-webhook") {
			t.Errorf("%s: reads WEBHOOK_ADDR = %v", svc, ok)
		}
	}
}
