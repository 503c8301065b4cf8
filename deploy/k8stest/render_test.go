package k8stest

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// repoRoot is the repository, seen from this package's directory.
const repoRoot = "../.."

// k8sDir is the kustomize tree, relative to repoRoot.
const k8sDir = "deploy/k8s"

// overlays are the kustomizations that are rendered and checked; the base
// is included because it must be valid on its own too.
var overlays = []string{"base", "overlays/dev", "overlays/prod"}

// cluster is one rendered overlay, every object decoded into its API type.
type cluster struct {
	Namespaces      []*corev1.Namespace
	ServiceAccounts []*corev1.ServiceAccount
	ConfigMaps      []*corev1.ConfigMap
	Secrets         []*corev1.Secret
	Services        []*corev1.Service
	Deployments     []*appsv1.Deployment
	StatefulSets    []*appsv1.StatefulSet
	HPAs            []*autoscalingv2.HorizontalPodAutoscaler
	PDBs            []*policyv1.PodDisruptionBudget
	NetworkPolicies []*networkingv1.NetworkPolicy
	Ingresses       []*networkingv1.Ingress
	// ScaledObjects are KEDA's (components/keda-orchestrator), kept as
	// plain maps: KEDA's API types are not a dependency here.
	ScaledObjects []map[string]any
	// PVCs come only with components/erp-files.
	PVCs []*corev1.PersistentVolumeClaim
}

// add decodes one object strictly into the type its apiVersion and kind
// name: a field the API does not have is an error, not silently dropped.
func (c *cluster) add(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return fmt.Errorf("type meta: %w", err)
	}
	var err error
	switch gvk := tm.APIVersion + "/" + tm.Kind; gvk {
	case "v1/Namespace":
		c.Namespaces, err = decodeInto(doc, c.Namespaces)
	case "v1/ServiceAccount":
		c.ServiceAccounts, err = decodeInto(doc, c.ServiceAccounts)
	case "v1/ConfigMap":
		c.ConfigMaps, err = decodeInto(doc, c.ConfigMaps)
	case "v1/Secret":
		c.Secrets, err = decodeInto(doc, c.Secrets)
	case "v1/Service":
		c.Services, err = decodeInto(doc, c.Services)
	case "apps/v1/Deployment":
		c.Deployments, err = decodeInto(doc, c.Deployments)
	case "apps/v1/StatefulSet":
		c.StatefulSets, err = decodeInto(doc, c.StatefulSets)
	case "autoscaling/v2/HorizontalPodAutoscaler":
		c.HPAs, err = decodeInto(doc, c.HPAs)
	case "policy/v1/PodDisruptionBudget":
		c.PDBs, err = decodeInto(doc, c.PDBs)
	case "networking.k8s.io/v1/NetworkPolicy":
		c.NetworkPolicies, err = decodeInto(doc, c.NetworkPolicies)
	case "networking.k8s.io/v1/Ingress":
		c.Ingresses, err = decodeInto(doc, c.Ingresses)
	case "v1/PersistentVolumeClaim":
		c.PVCs, err = decodeInto(doc, c.PVCs)
	case "keda.sh/v1alpha1/ScaledObject":
		var m map[string]any
		err = yaml.Unmarshal(doc, &m)
		c.ScaledObjects = append(c.ScaledObjects, m)
	default:
		return fmt.Errorf("unexpected object %s (not a kind these manifests should contain)", gvk)
	}
	return err
}

func decodeInto[T any](doc []byte, list []*T) ([]*T, error) {
	obj := new(T)
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return list, err
	}
	return append(list, obj), nil
}

// render builds the kustomization in dir of fSys and decodes the result.
func render(fSys filesys.FileSystem, dir string) (*cluster, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(fSys, dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	c := new(cluster)
	for _, r := range m.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.CurId(), err)
		}
		if err := c.add(doc); err != nil {
			return nil, fmt.Errorf("%s/%s: %w", r.GetKind(), r.GetName(), err)
		}
	}
	return c, nil
}

var renderedOnDisk = sync.OnceValue(func() map[string]renderResult {
	out := make(map[string]renderResult)
	fSys := filesys.MakeFsOnDisk()
	for _, o := range overlays {
		c, err := render(fSys, filepath.Join(repoRoot, k8sDir, o))
		out[o] = renderResult{c, err}
	}
	return out
})

type renderResult struct {
	c   *cluster
	err error
}

// memCopy copies the kustomize tree into an in-memory file system, under
// /k8s, for renders of edited copies.
func memCopy() (filesys.FileSystem, error) {
	mem := filesys.MakeFsInMemory()
	root := filepath.Join(repoRoot, k8sDir)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		r, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile(path.Join("/k8s", filepath.ToSlash(r)), b)
	})
	return mem, err
}

// workload is the pod-owning part of a Deployment or StatefulSet.
type workload struct {
	Kind     string
	Name     string
	Replicas *int32
	Template *corev1.PodTemplateSpec
	Selector *metav1.LabelSelector
}

func (w workload) String() string { return strings.ToLower(w.Kind) + "/" + w.Name }

func (c *cluster) workloads() []workload {
	var out []workload
	for _, d := range c.Deployments {
		out = append(out, workload{"Deployment", d.Name, d.Spec.Replicas, &d.Spec.Template, d.Spec.Selector})
	}
	for _, s := range c.StatefulSets {
		out = append(out, workload{"StatefulSet", s.Name, s.Spec.Replicas, &s.Spec.Template, s.Spec.Selector})
	}
	return out
}

func (c *cluster) workload(name string) (workload, bool) {
	for _, w := range c.workloads() {
		if w.Name == name {
			return w, true
		}
	}
	return workload{}, false
}

func (c *cluster) service(name string) *corev1.Service {
	for _, s := range c.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func (c *cluster) configMap(name string) *corev1.ConfigMap {
	for _, m := range c.ConfigMaps {
		if m.Name == name {
			return m
		}
	}
	return nil
}

func (c *cluster) serviceAccount(name string) *corev1.ServiceAccount {
	for _, s := range c.ServiceAccounts {
		if s.Name == name {
			return s
		}
	}
	return nil
}
