package k8stest

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestERPFilesComponent renders prod with the optional erp-files
// component: every erp-poster replica mounts one ReadWriteMany claim,
// writable by its nonroot user, at the directory ERP_FILES_DIR names (the
// root file system is read-only, so camt054 files can go nowhere else).
func TestERPFilesComponent(t *testing.T) {
	fSys, err := memCopy()
	if err != nil {
		t.Fatal(err)
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../prod\ncomponents:\n  - ../../components/erp-files\n"
	if err := fSys.WriteFile("/k8s/overlays/prod-files/kustomization.yaml", []byte(k)); err != nil {
		t.Fatal(err)
	}
	c, err := render(fSys, "/k8s/overlays/prod-files")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.PVCs) != 1 || !slices.Contains(c.PVCs[0].Spec.AccessModes, corev1.ReadWriteMany) {
		t.Fatalf("claims %+v: want one ReadWriteMany claim, shared by the replicas", c.PVCs)
	}
	claim := c.PVCs[0].Name
	var pod *corev1.PodSpec
	for _, d := range c.Deployments {
		if d.Name == "erp-poster" {
			pod = &d.Spec.Template.Spec
		}
	}
	if pod == nil {
		t.Fatal("no erp-poster Deployment")
	}
	volume := ""
	for _, v := range pod.Volumes {
		if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim {
			volume = v.Name
		}
	}
	ctr := pod.Containers[0]
	dir := ""
	for _, e := range ctr.Env {
		if e.Name == "ERP_FILES_DIR" {
			dir = e.Value
		}
	}
	mounted := false
	for _, m := range ctr.VolumeMounts {
		if m.Name == volume && m.MountPath == dir && !m.ReadOnly {
			mounted = true
		}
	}
	if volume == "" || dir == "" || !mounted {
		t.Errorf("erp-poster: volume %q of claim %s, ERP_FILES_DIR %q, mounts %+v: want the claim mounted writable at ERP_FILES_DIR", volume, claim, dir, ctr.VolumeMounts)
	}
	sc := pod.SecurityContext
	if sc == nil || sc.FSGroup == nil || sc.RunAsGroup == nil || *sc.FSGroup != *sc.RunAsGroup {
		t.Errorf("pod security context %+v: the volume's group must be the user's", sc)
	}
	if ctr.SecurityContext == nil || ctr.SecurityContext.ReadOnlyRootFilesystem == nil || !*ctr.SecurityContext.ReadOnlyRootFilesystem {
		t.Error("the component must not loosen the read-only root file system")
	}
}
