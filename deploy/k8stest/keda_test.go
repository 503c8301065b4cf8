package k8stest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
)

// TestKEDAComponent renders prod with the optional KEDA component: the CPU
// HPA of the orchestrator gives way to one ScaledObject that keeps the CPU
// target, adds the lag of the orchestrator's own durable consumers, and
// stays within prod's replica bounds (the connection budget counts them).
func TestKEDAComponent(t *testing.T) {
	fSys, err := memCopy()
	if err != nil {
		t.Fatal(err)
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../prod\ncomponents:\n  - ../../components/keda-orchestrator\n"
	if err := fSys.WriteFile("/k8s/overlays/prod-keda/kustomization.yaml", []byte(k)); err != nil {
		t.Fatal(err)
	}
	c, err := render(fSys, "/k8s/overlays/prod-keda")
	if err != nil {
		t.Fatal(err)
	}
	prod := realWorld(t, "overlays/prod")
	for _, h := range c.HPAs {
		if h.Spec.ScaleTargetRef.Name == "payment-orchestrator" {
			t.Errorf("HPA %s still scales payment-orchestrator beside KEDA", h.Name)
		}
	}
	if len(c.HPAs) != len(prod.c.HPAs)-1 {
		t.Errorf("%d HPAs, want prod's %d less the orchestrator's", len(c.HPAs), len(prod.c.HPAs))
	}
	if len(c.ScaledObjects) != 1 {
		t.Fatalf("%d ScaledObjects, want 1", len(c.ScaledObjects))
	}
	so := c.ScaledObjects[0]
	spec, _ := so["spec"].(map[string]any)
	ref, _ := spec["scaleTargetRef"].(map[string]any)
	if ref["name"] != "payment-orchestrator" {
		t.Errorf("scales %v", ref["name"])
	}
	wl, _ := prod.c.workload("payment-orchestrator")
	var hpaMax int32
	for _, h := range prod.c.HPAs {
		if h.Spec.ScaleTargetRef.Name == "payment-orchestrator" {
			hpaMax = h.Spec.MaxReplicas
		}
	}
	if fmt.Sprint(spec["minReplicaCount"]) != strconv.Itoa(int(prod.minReplicas(wl))) || fmt.Sprint(spec["maxReplicaCount"]) != strconv.Itoa(int(hpaMax)) {
		t.Errorf("replicas %v..%v, want prod's HPA bounds %d..%d", spec["minReplicaCount"], spec["maxReplicaCount"], prod.minReplicas(wl), hpaMax)
	}

	src, err := os.ReadFile(filepath.Join(repoRoot, "services/payment-orchestrator/main.go"))
	if err != nil {
		t.Fatal(err)
	}
	durables := map[string]string{} // stream -> durable, from the source
	for _, m := range regexp.MustCompile(`Stream: bus\.(Stream\w+), Durable: "([^"]+)"`).FindAllStringSubmatch(string(src), -1) {
		durables[map[string]string{"StreamERP": "MLC_ERP", "StreamGC": "MLC_GC", "StreamDLQ": "MLC_DLQ"}[m[1]]] = m[2]
	}
	triggers, _ := spec["triggers"].([]any)
	var kinds []string
	lagged := map[string]bool{}
	for _, tr := range triggers {
		m, _ := tr.(map[string]any)
		md, _ := m["metadata"].(map[string]any)
		kinds = append(kinds, fmt.Sprint(m["type"]))
		if m["type"] != "nats-jetstream" {
			continue
		}
		stream, consumer := fmt.Sprint(md["stream"]), fmt.Sprint(md["consumer"])
		if durables[stream] != consumer {
			t.Errorf("lag trigger on %s/%s; the orchestrator's durable on %s is %q", stream, consumer, stream, durables[stream])
		}
		if n, err := strconv.Atoi(fmt.Sprint(md["lagThreshold"])); err != nil || n < 1 {
			t.Errorf("%s: lagThreshold %v", stream, md["lagThreshold"])
		}
		if md["account"] != "MLC" {
			t.Errorf("%s: account %v, want MLC (nats.conf)", stream, md["account"])
		}
		lagged[stream] = true
	}
	if !slices.Contains(kinds, "cpu") || !lagged["MLC_ERP"] || !lagged["MLC_GC"] {
		t.Errorf("triggers %v on %v: want cpu and the lag of MLC_ERP and MLC_GC", kinds, lagged)
	}
}

// TestOverlaysInOwnNamespaces: dev and prod never share a namespace, so
// applying one never changes the other's Secrets, policies or NATS.
func TestOverlaysInOwnNamespaces(t *testing.T) {
	seen := map[string]string{}
	for _, o := range []string{"overlays/dev", "overlays/prod"} {
		w := realWorld(t, o)
		if len(w.c.Namespaces) != 1 {
			t.Fatalf("%s: %d namespaces", o, len(w.c.Namespaces))
		}
		ns := w.c.Namespaces[0].Name
		if other, dup := seen[ns]; dup {
			t.Errorf("%s and %s both deploy into namespace %s", other, o, ns)
		}
		seen[ns] = o
		for _, d := range w.c.Deployments {
			if d.Namespace != ns {
				t.Errorf("%s: deployment %s in namespace %q, want %s", o, d.Name, d.Namespace, ns)
			}
		}
	}
}
