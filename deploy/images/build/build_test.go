package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/deploy/images/oci"
)

// hello is a service that proves what the image gives it: it reads the CA
// bundle the image's SSL_CERT_FILE names, parses every certificate the way
// crypto/tls would, and loads a time zone (embedded, there is no zoneinfo).
const hello = `package main

import (
	"crypto/x509"
	"fmt"
	"os"
	"time"
)

func main() {
	pem, err := os.ReadFile(os.Getenv("SSL_CERT_FILE"))
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		panic("no certificates")
	}
	if _, err := time.LoadLocation("Europe/London"); err != nil {
		panic(err)
	}
	fmt.Printf("ok uid=%d", os.Getuid())
}
`

func workspace(t *testing.T) (string, string) {
	t.Helper()
	root := t.TempDir()
	write := func(name, data string) {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/hello\n\ngo 1.26.0\n")
	write("services/hello/main.go", hello)
	ca := filepath.Join(root, "ca.pem")
	b, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Skipf("no system CA bundle to build a base from: %v", err)
	}
	if err := os.WriteFile(ca, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return root, ca
}

func options(root, ca, out string) Options {
	return Options{
		Root: root, Service: "hello", Platforms: []oci.Platform{{OS: "linux", Architecture: "amd64"}},
		Revision: "0123456789abcdef0123456789abcdef01234567", Created: time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC),
		Version: "0.1.0", Source: "https://example.com/src", CABundle: ca, Out: out,
	}
}

func blob(t *testing.T, dir string, d oci.Descriptor) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(d.Digest, "sha256:")))
	if err != nil {
		t.Fatal(err)
	}
	if oci.Digest(b) != d.Digest {
		t.Fatalf("blob %s does not match its digest", d.Digest)
	}
	return b
}

// unpack extracts a gzipped layer under root.
func unpack(t *testing.T, layer []byte, root string) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(layer))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, os.FileMode(h.Mode).Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestImage(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	root, ca := workspace(t)
	out := t.TempDir()
	ctx := context.Background()
	d, err := Image(ctx, options(root, ca, out))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(out, "hello")
	var m oci.Manifest
	if err := json.Unmarshal(blob(t, dir, d), &m); err != nil {
		t.Fatal(err)
	}
	var cfg oci.Config
	if err := json.Unmarshal(blob(t, dir, m.Config), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" {
		t.Errorf("user %q, want the numeric non-root 65532:65532", cfg.Config.User)
	}
	if got := strings.Join(cfg.Config.Entrypoint, " "); got != "/usr/local/bin/hello" {
		t.Errorf("entrypoint %q", got)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567",
		"org.opencontainers.image.title":    "hello",
		"org.opencontainers.image.version":  "0.1.0",
		"org.opencontainers.image.source":   "https://example.com/src",
		"org.opencontainers.image.created":  "2026-12-06T03:00:00Z",
	} {
		if got := cfg.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" || len(cfg.RootFS.DiffIDs) != 2 || len(m.Layers) != 2 {
		t.Errorf("config %s/%s with %d diff ids, manifest %d layers", cfg.OS, cfg.Architecture, len(cfg.RootFS.DiffIDs), len(m.Layers))
	}

	// Unpack the layers into a root file system and run the entrypoint
	// with the image's environment, paths moved under that root.
	fsRoot := t.TempDir()
	for _, l := range m.Layers {
		unpack(t, blob(t, dir, l), fsRoot)
	}
	passwd, err := os.ReadFile(filepath.Join(fsRoot, "etc/passwd"))
	if err != nil || !strings.Contains(string(passwd), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd lacks the nonroot user: %q %v", passwd, err)
	}
	cmd := exec.Command(filepath.Join(fsRoot, cfg.Config.Entrypoint[0]))
	for _, e := range cfg.Config.Env {
		k, v, _ := strings.Cut(e, "=")
		if strings.HasPrefix(v, "/") {
			v = filepath.Join(fsRoot, v)
		}
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	outb, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(outb), "ok") {
		t.Fatalf("the binary in the layer: %v: %s", err, outb)
	}
	if file, err := exec.Command("go", "version", filepath.Join(fsRoot, cfg.Config.Entrypoint[0])).CombinedOutput(); err != nil || !strings.Contains(string(file), "go1.") {
		t.Errorf("go version of the binary: %s %v", file, err)
	}

	// The same inputs give the same digest; another revision another one.
	again, err := Image(ctx, options(root, ca, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if again.Digest != d.Digest {
		t.Errorf("rebuilding gave %s, first build %s: not reproducible", again.Digest, d.Digest)
	}
	o := options(root, ca, t.TempDir())
	o.Revision = "fedcba9876543210fedcba9876543210fedcba98"
	other, err := Image(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if other.Digest == d.Digest {
		t.Error("another revision label gave the same digest")
	}
}

func TestOptionsCheck(t *testing.T) {
	root, ca := workspace(t)
	good := options(root, ca, t.TempDir())
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Options){
		"service with a slash": func(o *Options) { o.Service = "../hello" },
		"unknown service":      func(o *Options) { o.Service = "nope" },
		"no platform":          func(o *Options) { o.Platforms = nil },
		"no revision":          func(o *Options) { o.Revision = "" },
		"no time":              func(o *Options) { o.Created = time.Time{} },
		"no CA bundle":         func(o *Options) { o.CABundle = "" },
	} {
		o := good
		mutate(&o)
		if err := o.Check(); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	o := good
	o.CABundle = filepath.Join(root, "go.mod")
	if _, err := Image(context.Background(), o); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("a CA bundle without certificates: %v", err)
	}
}
