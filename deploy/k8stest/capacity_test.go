package k8stest

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// goRuntime are variables the Go runtime reads itself, before main.
var goRuntime = []string{"GOMEMLIMIT", "GOGC", "GOMAXPROCS", "GODEBUG"}

// checkMemoryLimit: every service tells the Go runtime its container's
// memory limit (GOMEMLIMIT from resourceFieldRef), so the collector works
// harder near the limit instead of the kernel killing the pod.
func checkMemoryLimit(w *world) (probs []string) {
	for _, svc := range w.services {
		_, ctr, err := w.svc(svc)
		if err != nil {
			continue
		}
		var ref *corev1.ResourceFieldSelector
		for _, e := range ctr.Env {
			if e.Name == "GOMEMLIMIT" && e.ValueFrom != nil {
				ref = e.ValueFrom.ResourceFieldRef
			}
		}
		switch {
		case ref == nil:
			probs = append(probs, fmt.Sprintf("%s: GOMEMLIMIT is not taken from the container's memory limit (resourceFieldRef limits.memory)", svc))
		case ref.Resource != "limits.memory" || (ref.ContainerName != "" && ref.ContainerName != ctr.Name):
			probs = append(probs, fmt.Sprintf("%s: GOMEMLIMIT from %s of container %q, want limits.memory of its own container", svc, ref.Resource, ref.ContainerName))
		case !ref.Divisor.IsZero() && ref.Divisor.Value() != 1:
			// GOMEMLIMIT without a unit is bytes: a divisor of 1Mi would
			// set a limit a million times too small.
			probs = append(probs, fmt.Sprintf("%s: GOMEMLIMIT divisor %s; the Go runtime reads a bare number as bytes", svc, ref.Divisor.String()))
		}
	}
	return probs
}

// bytesPerWorker is the least memory limit per concurrent handler of the
// orchestrator: each holds a decoded message, a GoCardless request and
// response and its trace spans. A floor, not a measurement: below it, a
// full set of workers leaves the runtime nothing to work with.
var bytesPerWorker = resource.MustParse("4Mi")

// checkWorkersFit: the orchestrator's memory limit and its pool match the
// handlers it runs at once.
func checkWorkersFit(w *world) (probs []string) {
	const svc = "payment-orchestrator"
	_, ctr, err := w.svc(svc)
	if err != nil {
		return nil
	}
	workers := 0
	for _, name := range []string{"ERP_WORKERS", "GC_WORKERS"} {
		v, ok := w.effective(svc, name)
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 1 {
			probs = append(probs, fmt.Sprintf("%s: %s unknown (%q)", svc, name, v))
			continue
		}
		workers += n
	}
	if len(probs) > 0 {
		return probs
	}
	limit := ctr.Resources.Limits[corev1.ResourceMemory]
	need := bytesPerWorker.Value() * int64(workers)
	if limit.Value() < need {
		probs = append(probs, fmt.Sprintf("%s: %d workers in a %s memory limit; want at least %s each (%s)",
			svc, workers, limit.String(), bytesPerWorker.String(), resource.NewQuantity(need, resource.BinarySI).String()))
	}
	if pool, ok := w.poolSize(svc); ok && pool > workers {
		probs = append(probs, fmt.Sprintf("%s: DATABASE_POOL_SIZE %d above its %d workers; connections nobody can use", svc, pool, workers))
	}
	return probs
}

func (w *world) poolSize(svc string) (int, bool) {
	_, ctr, err := w.svc(svc)
	if err != nil {
		return 0, false
	}
	env, _ := w.c.containerEnv(ctr)
	v, set := env["DATABASE_POOL_SIZE"]
	if !set || !v.Known {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(v.Value))
	return n, err == nil
}

// maxPods is the most pods a service runs: its autoscaler's maximum (or
// its replicas) plus the extra pod a rolling update may start.
func (w *world) maxPods(wl workload) int {
	n := int(w.minReplicas(wl))
	for _, h := range w.c.HPAs {
		if h.Spec.ScaleTargetRef.Name == wl.Name {
			n = int(h.Spec.MaxReplicas)
		}
	}
	for _, d := range w.c.Deployments {
		if d.Name != wl.Name {
			continue
		}
		surge := intstr.FromString("25%") // the Deployment default
		if ru := d.Spec.Strategy.RollingUpdate; ru != nil && ru.MaxSurge != nil {
			surge = *ru.MaxSurge
		}
		if d.Spec.Strategy.Type != "Recreate" {
			s, err := intstr.GetScaledValueFromIntOrPercent(&surge, n, true)
			if err == nil {
				n += s
			}
		}
	}
	return n
}

// checkConnectionBudget: every service sets its pool size, and pods x pool
// summed over services at their largest stays within the overlay's share
// of Postgres max_connections, which deploy/README.md states.
func checkConnectionBudget(w *world) (probs []string) {
	budget := perOverlay[w.overlay].dbConnections
	total := 0
	var parts []string
	for _, svc := range w.services {
		wl, _, err := w.svc(svc)
		if err != nil {
			continue
		}
		pool, ok := w.poolSize(svc)
		if !ok {
			probs = append(probs, fmt.Sprintf("%s: DATABASE_POOL_SIZE is not set in the manifest; the default pool would not be budgeted", svc))
			continue
		}
		pods := w.maxPods(wl)
		total += pods * pool
		parts = append(parts, fmt.Sprintf("%s %dx%d", svc, pods, pool))
	}
	if total > budget {
		probs = append(probs, fmt.Sprintf("%s: up to %d Postgres connections (%s), over the budget of %d", w.overlay, total, strings.Join(parts, ", "), budget))
	}
	if !strings.Contains(w.readme, fmt.Sprintf("%d connections", budget)) {
		probs = append(probs, fmt.Sprintf("%s does not state the budget of %d connections of %s", readmePath, budget, w.overlay))
	}
	return probs
}
