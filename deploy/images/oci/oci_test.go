package oci

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var epoch = time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)

func TestBuildLayerIsDeterministicAndComplete(t *testing.T) {
	files := []File{
		{Path: "/usr/local/bin/app", Mode: 0o755, Data: []byte("binary")},
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0::/:/sbin/nologin\n")},
		{Path: "/tmp", Mode: 0o777 | fs.ModeSticky, Dir: true},
	}
	a, err := BuildLayer(files, epoch, "x")
	if err != nil {
		t.Fatal(err)
	}
	// Same files in another order: same bytes.
	b, err := BuildLayer([]File{files[2], files[0], files[1]}, epoch, "x")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Blob, b.Blob) || a.DiffID != b.DiffID {
		t.Fatal("the same files in another order gave another layer")
	}
	c, err := BuildLayer(files, epoch.Add(time.Second), "x")
	if err != nil {
		t.Fatal(err)
	}
	if c.DiffID == a.DiffID {
		t.Fatal("the time stamp does not reach the layer")
	}

	zr, err := gzip.NewReader(bytes.NewReader(a.Blob))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header carries name %q, time %v", zr.Name, zr.ModTime)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if Digest(raw) != a.DiffID {
		t.Error("diff id is not the digest of the uncompressed tar")
	}
	var got []string
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(epoch) {
			t.Errorf("%s: owner %d:%d time %v", h.Name, h.Uid, h.Gid, h.ModTime)
		}
		got = append(got, fmt.Sprintf("%s %04o %c", h.Name, h.Mode, h.Typeflag))
	}
	want := []string{"etc/ 0755 5", "etc/passwd 0644 0", "tmp/ 1777 5", "usr/ 0755 5", "usr/local/ 0755 5", "usr/local/bin/ 0755 5", "usr/local/bin/app 0755 0"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestBuildLayerRejects(t *testing.T) {
	for _, files := range [][]File{
		{{Path: "relative", Data: []byte("x")}},
		{{Path: "/", Dir: true}},
		{{Path: "/a", Data: []byte("x")}, {Path: "/a/", Data: []byte("y")}},
	} {
		if _, err := BuildLayer(files, epoch, ""); err == nil {
			t.Errorf("%v: want an error", files)
		}
	}
}

// readLayout follows index.json to the manifests, checking that every blob
// it reaches is present and matches its digest and size.
func readLayout(t *testing.T, dir string) (Index, []Manifest) {
	t.Helper()
	blob := func(d Descriptor) []byte {
		b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(d.Digest, "sha256:")))
		if err != nil {
			t.Fatal(err)
		}
		if Digest(b) != d.Digest || int64(len(b)) != d.Size {
			t.Fatalf("blob %s: digest %s size %d, descriptor says size %d", d.Digest, Digest(b), len(b), d.Size)
		}
		return b
	}
	var top Index
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	if lv, _ := os.ReadFile(filepath.Join(dir, "oci-layout")); string(lv) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout: %s", lv)
	}
	if len(top.Manifests) != 1 {
		t.Fatalf("index.json lists %d entries, want 1", len(top.Manifests))
	}
	descs := top.Manifests
	if descs[0].MediaType == MediaTypeIndex {
		var idx Index
		if err := json.Unmarshal(blob(descs[0]), &idx); err != nil {
			t.Fatal(err)
		}
		descs = idx.Manifests
	}
	var out []Manifest
	for _, d := range descs {
		if d.MediaType != MediaTypeManifest {
			t.Fatalf("%s: media type %s", d.Digest, d.MediaType)
		}
		var m Manifest
		if err := json.Unmarshal(blob(d), &m); err != nil {
			t.Fatal(err)
		}
		blob(m.Config)
		for _, l := range m.Layers {
			blob(l)
		}
		out = append(out, m)
	}
	return top, out
}

func TestLayoutSingleAndMultiPlatform(t *testing.T) {
	layer, err := BuildLayer([]File{{Path: "/x", Mode: 0o644, Data: []byte("x")}}, epoch, "")
	if err != nil {
		t.Fatal(err)
	}
	img := func(arch string) Image {
		return Image{Platform: Platform{OS: "linux", Architecture: arch}, Created: epoch,
			Config: ImageConfig{User: "1:1", Entrypoint: []string{"/x"}}, Layers: []Layer{layer}}
	}
	for _, archs := range [][]string{{"amd64"}, {"amd64", "arm64"}} {
		dir := filepath.Join(t.TempDir(), "layout")
		l, err := NewLayout(dir)
		if err != nil {
			t.Fatal(err)
		}
		var ds []Descriptor
		for _, a := range archs {
			d, err := l.WriteImage(img(a))
			if err != nil {
				t.Fatal(err)
			}
			ds = append(ds, d)
		}
		top, err := l.Finish(ds, "v1")
		if err != nil {
			t.Fatal(err)
		}
		idx, manifests := readLayout(t, dir)
		if idx.Manifests[0].Digest != top.Digest || idx.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "v1" {
			t.Errorf("index.json %+v, Finish returned %s", idx.Manifests[0], top.Digest)
		}
		if len(manifests) != len(archs) {
			t.Errorf("%d manifests, want %d", len(manifests), len(archs))
		}
		wantType := MediaTypeManifest
		if len(archs) > 1 {
			wantType = MediaTypeIndex
		}
		if top.MediaType != wantType {
			t.Errorf("%v: top media type %s, want %s", archs, top.MediaType, wantType)
		}
		arc := filepath.Join(t.TempDir(), "a.tar")
		if err := Archive(dir, arc, epoch); err != nil {
			t.Fatal(err)
		}
		arc2 := filepath.Join(t.TempDir(), "b.tar")
		if err := Archive(dir, arc2, epoch); err != nil {
			t.Fatal(err)
		}
		a1, _ := os.ReadFile(arc)
		a2, _ := os.ReadFile(arc2)
		if !bytes.Equal(a1, a2) || len(a1) == 0 {
			t.Error("archiving the same layout twice gave different files")
		}
	}
}

func TestParsePlatform(t *testing.T) {
	for in, want := range map[string]string{"linux/amd64": "linux/amd64", "linux/arm/v7": "linux/arm/v7"} {
		p, err := ParsePlatform(in)
		if err != nil || p.String() != want {
			t.Errorf("%s: %v %v", in, p, err)
		}
	}
	for _, bad := range []string{"", "linux", "linux/", "/amd64", "a/b/c/d"} {
		if _, err := ParsePlatform(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}
