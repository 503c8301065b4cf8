package k8stest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// The API server check needs a kube-apiserver (deploy/apiserver/build.sh)
// and etcd (Debian's etcd-server); .ci/run provides both. Without them the
// test is skipped: `make test` stays fast, the CI step is where it runs.
const (
	envAPIServer = "MLC_KUBE_APISERVER"
	envEtcd      = "MLC_ETCD"
)

// apiServer is a kube-apiserver on loopback with its own etcd.
type apiServer struct {
	url    string
	token  string
	client *http.Client
}

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startProcess runs a command until the test ends, its output in a file
// that is shown if the test fails.
func startProcess(t *testing.T, name string, args ...string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), filepath.Base(name)+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("%s output (tail):\n%s", filepath.Base(name), b)
		}
		logf.Close()
	})
}

func startAPIServer(t *testing.T) *apiServer {
	t.Helper()
	bin, etcd := os.Getenv(envAPIServer), os.Getenv(envEtcd)
	if etcd == "" {
		etcd, _ = exec.LookPath("etcd")
	}
	if bin == "" || etcd == "" {
		t.Skipf("set %s (deploy/apiserver/build.sh) and have etcd (apt-get install etcd-server) to run", envAPIServer)
	}
	dir := t.TempDir()
	clientPort, peerPort := freeLoopbackPort(t), freeLoopbackPort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	startProcess(t, etcd, "--data-dir", filepath.Join(dir, "etcd"), "--name", "mlc",
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-cluster", fmt.Sprintf("mlc=http://127.0.0.1:%d", peerPort))

	// Service-account signing key pair, and a token for an admin.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	saKey := write("sa.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	saPub := write("sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	token := fmt.Sprintf("mlc-%d", time.Now().UnixNano())
	tokens := write("tokens.csv", []byte(token+`,admin,1,"system:masters"`+"\n"))
	port := freeLoopbackPort(t)
	startProcess(t, bin,
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(port),
		"--cert-dir", filepath.Join(dir, "certs"),
		"--token-auth-file", tokens,
		"--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", saPub, "--service-account-signing-key-file", saKey,
		"--service-cluster-ip-range", "10.96.0.0/16",
		"--enable-admission-plugins", "PodSecurity",
		"--enable-priority-and-fairness=false")
	s := &apiServer{
		url:   fmt.Sprintf("https://127.0.0.1:%d", port),
		token: token,
		// The server's certificate is self-signed by itself at start-up;
		// the connection never leaves loopback.
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}},
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		code, body, err := s.do(t.Context(), "GET", "/readyz", "", nil)
		if err == nil && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kube-apiserver not ready: %d %s %v", code, body, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return s
}

func (s *apiServer) do(ctx context.Context, method, path, contentType string, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// resources maps the kinds these manifests use to their API paths.
var resources = map[string]struct {
	plural     string
	namespaced bool
}{
	"v1/Namespace":                           {"namespaces", false},
	"v1/ServiceAccount":                      {"serviceaccounts", true},
	"v1/ConfigMap":                           {"configmaps", true},
	"v1/Service":                             {"services", true},
	"v1/Pod":                                 {"pods", true},
	"apps/v1/Deployment":                     {"deployments", true},
	"apps/v1/StatefulSet":                    {"statefulsets", true},
	"autoscaling/v2/HorizontalPodAutoscaler": {"horizontalpodautoscalers", true},
	"policy/v1/PodDisruptionBudget":          {"poddisruptionbudgets", true},
	"networking.k8s.io/v1/NetworkPolicy":     {"networkpolicies", true},
	"networking.k8s.io/v1/Ingress":           {"ingresses", true},
}

func objectPath(apiVersion, kind, namespace, name string) (string, error) {
	r, ok := resources[apiVersion+"/"+kind]
	if !ok {
		return "", fmt.Errorf("no API path known for %s %s", apiVersion, kind)
	}
	p := "/api/" + apiVersion
	if strings.Contains(apiVersion, "/") {
		p = "/apis/" + apiVersion
	}
	if r.namespaced {
		p += "/namespaces/" + namespace
	}
	return p + "/" + r.plural + "/" + name, nil
}

// apply server-side applies one object with strict field validation: a
// field the API does not know, or a duplicate, is an error, not a warning.
func (s *apiServer) apply(ctx context.Context, doc []byte, dryRun bool) error {
	var obj struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &obj); err != nil {
		return err
	}
	p, err := objectPath(obj.APIVersion, obj.Kind, obj.Namespace, obj.Name)
	if err != nil {
		return err
	}
	q := "?fieldManager=mlc-k8stest&force=true&fieldValidation=Strict"
	if dryRun {
		q += "&dryRun=All"
	}
	code, body, err := s.do(ctx, "PATCH", p+q, "application/apply-patch+yaml", doc)
	if err != nil {
		return err
	}
	if code/100 != 2 {
		return fmt.Errorf("%s %s/%s: %d %s", obj.Kind, obj.Namespace, obj.Name, code, body)
	}
	if strings.Contains(body, `"warning"`) {
		return fmt.Errorf("%s %s: warning: %s", obj.Kind, obj.Name, body)
	}
	return nil
}

// createPod creates (dry run: admission runs, nothing is stored) a pod.
func (s *apiServer) createPod(ctx context.Context, namespace string, pod *corev1.Pod) error {
	b, err := json.Marshal(pod)
	if err != nil {
		return err
	}
	code, body, err := s.do(ctx, "POST", "/api/v1/namespaces/"+namespace+"/pods?dryRun=All&fieldValidation=Strict", "application/json", b)
	if err != nil {
		return err
	}
	if code/100 != 2 {
		return fmt.Errorf("pod %s: %d %s", pod.Name, code, body)
	}
	return nil
}

// renderDocs renders an overlay as YAML documents, namespaces first.
func renderDocs(dir string) ([][]byte, error) {
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, err
	}
	var first, rest [][]byte
	for _, r := range m.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			return nil, err
		}
		if r.GetKind() == "Namespace" {
			first = append(first, doc)
		} else {
			rest = append(rest, doc)
		}
	}
	return append(first, rest...), nil
}

// podFrom is the pod a workload's controller would create: the template,
// and for a StatefulSet the volumes of its claim templates.
func podFrom(wl workload, namespace string) *corev1.Pod {
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: *wl.Template.ObjectMeta.DeepCopy(),
		Spec:       *wl.Template.Spec.DeepCopy(),
	}
	pod.Name, pod.Namespace = wl.Name+"-0", namespace
	return pod
}

// TestAPIServer applies both overlays to a real kube-apiserver with strict
// server-side validation and admits a pod from every template into their
// namespaces, which enforce the restricted Pod Security Standard.
func TestAPIServer(t *testing.T) {
	s := startAPIServer(t)
	ctx := t.Context()

	// The checks can fail: an unknown field and a privileged pod are refused.
	bad := []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: strict-check\n  namespace: default\n  lables: {a: b}\ndata: {}\n")
	if err := s.apply(ctx, bad, true); err == nil || !strings.Contains(err.Error(), "lables") {
		t.Errorf("an unknown field was accepted: %v", err)
	}

	// The committed kubeconform schemas are this server's.
	code, spec, err := s.do(ctx, "GET", "/openapi/v2", "", nil)
	if err != nil || code != 200 {
		t.Fatalf("openapi/v2: %d %v", code, err)
	}
	schemas, err := standaloneSchemas([]byte(spec), schemaKinds())
	if err != nil {
		t.Fatal(err)
	}
	if len(schemas) != len(schemaKinds()) {
		t.Errorf("%d schemas for %d kinds", len(schemas), len(schemaKinds()))
	}
	for name, b := range schemas {
		p := filepath.Join(schemaDir, name)
		if os.Getenv("MLC_UPDATE_SCHEMAS") != "" {
			if err := os.MkdirAll(schemaDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if old, err := os.ReadFile(p); err != nil || !bytes.Equal(old, b) {
			t.Errorf("%s is not this API server's schema (%v); regenerate with MLC_UPDATE_SCHEMAS=1 make k8s-check", p, err)
		}
	}

	for _, overlay := range []string{"overlays/dev", "overlays/prod"} {
		t.Run(overlay, func(t *testing.T) {
			docs, err := renderDocs(filepath.Join(repoRoot, k8sDir, overlay))
			if err != nil {
				t.Fatal(err)
			}
			for _, doc := range docs {
				if err := s.apply(ctx, doc, false); err != nil {
					t.Error(err)
				}
			}
			w := realWorld(t, overlay)
			ns := w.c.Namespaces[0].Name
			for _, wl := range w.c.workloads() {
				pod := podFrom(wl, ns)
				for _, s := range w.c.StatefulSets {
					if s.Name != wl.Name {
						continue
					}
					for _, claim := range s.Spec.VolumeClaimTemplates {
						pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: claim.Name,
							VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim.Name + "-" + pod.Name}}})
					}
				}
				if err := s.createPod(ctx, ns, pod); err != nil {
					t.Errorf("%s: %v", wl, err)
				}
			}
			// The namespace really enforces restricted: a pod that may
			// escalate privileges is refused.
			wl := w.c.workloads()[0]
			pod := podFrom(wl, ns)
			pod.Name = "not-restricted"
			yes := true
			pod.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = &yes
			if err := s.createPod(ctx, ns, pod); err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
				t.Errorf("a pod allowing privilege escalation was admitted: %v", err)
			}
		})
	}
}
