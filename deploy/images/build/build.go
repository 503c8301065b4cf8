// Package build turns a service of the workspace into an OCI image: a
// static Go binary (CGO off, trimmed paths, embedded time zone data) in one
// layer over a base layer with CA certificates and the non-root user the
// pods run as. Nothing is pulled from a registry; the CA bundle is the
// build machine's (Debian's ca-certificates), recorded by digest in a label.
package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"

	"github.com/ml-connector/ml-connector/deploy/images/oci"
)

// UID and GID the image runs as: distroless's "nonroot", numeric so that
// Kubernetes can verify runAsNonRoot; the manifests run pods as the same.
const (
	UID = 65532
	GID = 65532
)

// Options say what to build and how to label it.
type Options struct {
	Root      string // the workspace (go.work)
	Service   string // a directory under services/
	Platforms []oci.Platform
	Revision  string    // source revision (git commit)
	Created   time.Time // the revision's commit time: the same for every build of it
	Version   string
	Source    string // repository URL
	CABundle  string // PEM file of CA certificates
	Out       string // the layout is written to Out/<service>
}

var serviceName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// Check validates o before any work is done.
func (o Options) Check() error {
	switch {
	case !serviceName.MatchString(o.Service):
		return fmt.Errorf("service %q: want a lower-case directory name under services/", o.Service)
	case len(o.Platforms) == 0:
		return errors.New("no platforms")
	case o.Revision == "":
		return errors.New("no source revision")
	case o.Created.IsZero():
		return errors.New("no creation time")
	case o.CABundle == "":
		return errors.New("no CA bundle")
	case o.Out == "":
		return errors.New("no output directory")
	}
	if _, err := os.Stat(filepath.Join(o.Root, "services", o.Service, "main.go")); err != nil {
		return fmt.Errorf("service %s: %w", o.Service, err)
	}
	return nil
}

// Entrypoint is where the binary sits in the image.
func Entrypoint(service string) string { return "/usr/local/bin/" + service }

// Base is the base layer's content: CA certificates, the user and group
// files naming the non-root user, and a sticky /tmp.
func Base(caBundle []byte) []oci.File {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, GID)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", GID)
	return []oci.File{
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte(passwd)},
		{Path: "/etc/group", Mode: 0o644, Data: []byte(group)},
		{Path: "/etc/ssl/certs/ca-certificates.crt", Mode: 0o644, Data: caBundle},
		{Path: "/home/nonroot", Mode: 0o755, Dir: true},
		{Path: "/tmp", Mode: 0o777 | fs.ModeSticky, Dir: true},
	}
}

// Image builds o.Service for every platform into the layout Out/<service>
// and returns the descriptor whose digest names the image.
func Image(ctx context.Context, o Options) (oci.Descriptor, error) {
	if err := o.Check(); err != nil {
		return oci.Descriptor{}, err
	}
	ca, err := os.ReadFile(o.CABundle)
	if err != nil {
		return oci.Descriptor{}, fmt.Errorf("CA bundle: %w", err)
	}
	if !bytes.Contains(ca, []byte("-----BEGIN CERTIFICATE-----")) {
		return oci.Descriptor{}, fmt.Errorf("CA bundle %s holds no PEM certificate", o.CABundle)
	}
	base, err := oci.BuildLayer(Base(ca), o.Created, "base: CA certificates, nonroot user")
	if err != nil {
		return oci.Descriptor{}, err
	}
	layout, err := oci.NewLayout(filepath.Join(o.Out, o.Service))
	if err != nil {
		return oci.Descriptor{}, err
	}
	tmp, err := os.MkdirTemp("", "mlc-images-")
	if err != nil {
		return oci.Descriptor{}, err
	}
	defer os.RemoveAll(tmp)

	var manifests []oci.Descriptor
	for _, p := range o.Platforms {
		bin := filepath.Join(tmp, p.OS+"-"+p.Architecture+p.Variant)
		if err := goBuild(ctx, o.Root, o.Service, p, bin); err != nil {
			return oci.Descriptor{}, err
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			return oci.Descriptor{}, err
		}
		app, err := oci.BuildLayer([]oci.File{{Path: Entrypoint(o.Service), Mode: 0o755, Data: data}}, o.Created, "services/"+o.Service)
		if err != nil {
			return oci.Descriptor{}, err
		}
		d, err := layout.WriteImage(oci.Image{
			Platform: p,
			Created:  o.Created,
			Config: oci.ImageConfig{
				User:       fmt.Sprintf("%d:%d", UID, GID),
				Entrypoint: []string{Entrypoint(o.Service)},
				Env:        []string{"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"},
				WorkingDir: "/",
				Labels:     o.labels(ca),
			},
			Layers: []oci.Layer{base, app},
		})
		if err != nil {
			return oci.Descriptor{}, err
		}
		manifests = append(manifests, d)
	}
	ref := o.Version
	if ref == "" {
		ref = o.Revision
	}
	return layout.Finish(manifests, ref)
}

// labels are the OCI annotations of the image
// (image-spec annotations.md, pre-defined keys).
func (o Options) labels(ca []byte) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":    o.Service,
		"org.opencontainers.image.revision": o.Revision,
		"org.opencontainers.image.created":  o.Created.UTC().Format(time.RFC3339),
		// Not a pulled base: the CA bundle the base layer was made from.
		"io.ml-connector.ca-bundle.digest": oci.Digest(ca),
	}
	if o.Source != "" {
		l["org.opencontainers.image.source"] = o.Source
	}
	if o.Version != "" {
		l["org.opencontainers.image.version"] = o.Version
	}
	return l
}

// goBuild compiles ./services/<service> statically for p. The flags make
// the binary a function of the source and the Go version only: no build
// id, no paths of this machine, no VCS stamp (the revision is a label).
func goBuild(ctx context.Context, root, service string, p oci.Platform, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build",
		"-trimpath", "-buildvcs=false", "-tags", "timetzdata",
		"-ldflags", "-s -w -buildid=",
		"-o", out, "./services/"+service)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture, "GOFLAGS=")
	if p.Architecture == "arm" && p.Variant != "" {
		cmd.Env = append(cmd.Env, "GOARM="+p.Variant[1:])
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build services/%s for %s: %w\n%s", service, p, err, stderr.Bytes())
	}
	return nil
}
