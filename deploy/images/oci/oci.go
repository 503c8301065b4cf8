// Package oci writes container images as OCI image layouts
// (https://github.com/opencontainers/image-spec/blob/v1.1.0/image-layout.md)
// without a container engine or a registry: a service's static binary on a
// minimal base (CA certificates and a non-root user), one layer each.
//
// Everything written is a function of its inputs: tar entries are sorted and
// carry a fixed time and owner, gzip headers carry no name or time, and JSON
// is encoded from structs. The same binary, base and labels give the same
// digest on any machine, which is what lets a deploy pin an image by digest
// and anyone rebuild it to check.
package oci

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Media types of the OCI image specification v1.1.
const (
	MediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	MediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	MediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// File is one entry of a layer.
type File struct {
	Path string // absolute, e.g. /etc/passwd
	Mode fs.FileMode
	Data []byte // nil for a directory
	Dir  bool
}

// Descriptor points at a blob (image-spec descriptor.md).
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *Platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Platform is the os and architecture an image runs on.
type Platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Variant      string `json:"variant,omitempty"`
}

// ParsePlatform reads "linux/amd64" or "linux/arm/v7".
func ParsePlatform(s string) (Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return Platform{}, fmt.Errorf("platform %q: want os/arch[/variant]", s)
	}
	p := Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// ImageConfig is the runtime part of the image configuration.
type ImageConfig struct {
	User       string            `json:"User,omitempty"`
	Env        []string          `json:"Env,omitempty"`
	Entrypoint []string          `json:"Entrypoint,omitempty"`
	WorkingDir string            `json:"WorkingDir,omitempty"`
	Labels     map[string]string `json:"Labels,omitempty"`
}

// Config is the image configuration blob (image-spec config.md).
type Config struct {
	Created      string      `json:"created,omitempty"`
	Architecture string      `json:"architecture"`
	OS           string      `json:"os"`
	Variant      string      `json:"variant,omitempty"`
	Config       ImageConfig `json:"config"`
	RootFS       struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
	History []History `json:"history,omitempty"`
}

// History says where a layer came from.
type History struct {
	Created   string `json:"created,omitempty"`
	CreatedBy string `json:"created_by,omitempty"`
	Comment   string `json:"comment,omitempty"`
}

// Manifest is an image manifest (image-spec manifest.md).
type Manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Config        Descriptor        `json:"config"`
	Layers        []Descriptor      `json:"layers"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// Index lists manifests (image-spec image-index.md).
type Index struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Manifests     []Descriptor      `json:"manifests"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// Layer is a built layer: the compressed blob and the digest of its
// uncompressed tar (the config's diff_id).
type Layer struct {
	Blob    []byte
	DiffID  string
	Comment string
}

// BuildLayer makes a gzipped tar of files, with parent directories added,
// every entry owned by root and stamped with mtime.
func BuildLayer(files []File, mtime time.Time, comment string) (Layer, error) {
	entries := map[string]File{}
	for _, f := range files {
		p := filepath.ToSlash(filepath.Clean(f.Path))
		if !strings.HasPrefix(p, "/") || p == "/" {
			return Layer{}, fmt.Errorf("layer path %q: want an absolute file path", f.Path)
		}
		if _, dup := entries[p]; dup {
			return Layer{}, fmt.Errorf("layer path %q given twice", p)
		}
		f.Path = p
		entries[p] = f
		for d := filepath.Dir(p); d != "/"; d = filepath.Dir(d) {
			if _, ok := entries[d]; !ok {
				entries[d] = File{Path: d, Mode: 0o755, Dir: true}
			}
		}
	}
	names := make([]string, 0, len(entries))
	for p := range entries {
		names = append(names, p)
	}
	slices.Sort(names)

	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, p := range names {
		f := entries[p]
		h := &tar.Header{
			Name:    strings.TrimPrefix(p, "/"),
			Mode:    int64(f.Mode.Perm()),
			ModTime: mtime.UTC(),
			Format:  tar.FormatPAX,
		}
		if f.Mode&fs.ModeSticky != 0 {
			h.Mode |= 0o1000 // c_ISVTX: /tmp
		}
		if f.Dir {
			h.Typeflag = tar.TypeDir
			h.Name += "/"
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return Layer{}, fmt.Errorf("layer %s: %w", p, err)
		}
		if !f.Dir {
			if _, err := tw.Write(f.Data); err != nil {
				return Layer{}, fmt.Errorf("layer %s: %w", p, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return Layer{}, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return Layer{}, err
	}
	// No name, no modification time in the gzip header: only the content.
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return Layer{}, err
	}
	if err := zw.Close(); err != nil {
		return Layer{}, err
	}
	return Layer{Blob: gz.Bytes(), DiffID: Digest(raw.Bytes()), Comment: comment}, nil
}

// Digest is the OCI digest of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Image is one platform's image before it is written.
type Image struct {
	Platform Platform
	Created  time.Time
	Config   ImageConfig
	Layers   []Layer
}

// Layout is an OCI image layout directory being written. Blobs are
// content-addressed, so writing one twice is harmless.
type Layout struct {
	dir string
}

// NewLayout creates (or empties) dir and marks it as an OCI layout.
func NewLayout(dir string) (*Layout, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return nil, err
	}
	return &Layout{dir: dir}, nil
}

func (l *Layout) blob(mediaType string, b []byte) (Descriptor, error) {
	d := Descriptor{MediaType: mediaType, Digest: Digest(b), Size: int64(len(b))}
	hexPart := strings.TrimPrefix(d.Digest, "sha256:")
	if err := os.WriteFile(filepath.Join(l.dir, "blobs", "sha256", hexPart), b, 0o644); err != nil {
		return Descriptor{}, err
	}
	return d, nil
}

func (l *Layout) jsonBlob(mediaType string, v any) (Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return Descriptor{}, err
	}
	return l.blob(mediaType, b)
}

// WriteImage stores img's layers, config and manifest and returns the
// manifest's descriptor.
func (l *Layout) WriteImage(img Image) (Descriptor, error) {
	if len(img.Layers) == 0 {
		return Descriptor{}, errors.New("an image needs at least one layer")
	}
	created := img.Created.UTC().Format(time.RFC3339)
	cfg := Config{
		Created:      created,
		Architecture: img.Platform.Architecture,
		OS:           img.Platform.OS,
		Variant:      img.Platform.Variant,
		Config:       img.Config,
	}
	cfg.RootFS.Type = "layers"
	m := Manifest{SchemaVersion: 2, MediaType: MediaTypeManifest}
	for _, layer := range img.Layers {
		d, err := l.blob(MediaTypeLayer, layer.Blob)
		if err != nil {
			return Descriptor{}, err
		}
		m.Layers = append(m.Layers, d)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, layer.DiffID)
		cfg.History = append(cfg.History, History{Created: created, CreatedBy: "mlc-images", Comment: layer.Comment})
	}
	var err error
	if m.Config, err = l.jsonBlob(MediaTypeConfig, cfg); err != nil {
		return Descriptor{}, err
	}
	d, err := l.jsonBlob(MediaTypeManifest, m)
	if err != nil {
		return Descriptor{}, err
	}
	p := img.Platform
	d.Platform = &p
	return d, nil
}

// Finish writes the layout's index.json. With one manifest it points at
// the manifest itself; with several (one per platform) it points at an
// image index blob listing them, so the layout holds one multi-platform
// image. The returned descriptor is what a registry would serve for the
// tag: its digest is the image's.
func (l *Layout) Finish(manifests []Descriptor, refName string) (Descriptor, error) {
	if len(manifests) == 0 {
		return Descriptor{}, errors.New("no manifests")
	}
	top := manifests[0]
	if len(manifests) > 1 {
		var err error
		top, err = l.jsonBlob(MediaTypeIndex, Index{SchemaVersion: 2, MediaType: MediaTypeIndex, Manifests: manifests})
		if err != nil {
			return Descriptor{}, err
		}
	}
	entry := top
	entry.Annotations = map[string]string{"org.opencontainers.image.ref.name": refName}
	b, err := json.Marshal(Index{SchemaVersion: 2, MediaType: MediaTypeIndex, Manifests: []Descriptor{entry}})
	if err != nil {
		return Descriptor{}, err
	}
	if err := os.WriteFile(filepath.Join(l.dir, "index.json"), b, 0o644); err != nil {
		return Descriptor{}, err
	}
	top.Platform = nil
	return top, nil
}

// Archive writes the layout directory dir as a tar file (an "oci-archive"
// that skopeo and crane read), its entries sorted and stamped with mtime.
func Archive(dir, file string, mtime time.Time) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		names = append(names, p)
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range names {
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		info, err := os.Stat(p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, ModTime: mtime.UTC(), Format: tar.FormatPAX, Typeflag: tar.TypeReg}
		if info.IsDir() {
			h.Name += "/"
			h.Mode, h.Typeflag = 0o755, tar.TypeDir
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		h.Size = int64(len(b))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(file, buf.Bytes(), 0o644)
}
