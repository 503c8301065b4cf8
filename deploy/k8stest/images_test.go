package k8stest

import (
	"fmt"
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"testing"
)

// imageBuilder is the package that builds the images (make images).
const imageBuilder = "deploy/images/build/build.go"

// imageIDs reads the UID and GID constants the image builder puts in every
// image's config (User) and /etc/passwd.
func imageIDs(file string) (uid, gid int64, err error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, 0)
	if err != nil {
		return 0, 0, err
	}
	found := map[string]int64{}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, s := range gd.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.INT {
					continue
				}
				v, ok := constant.Int64Val(constant.MakeFromLiteral(lit.Value, lit.Kind, 0))
				if ok {
					found[n.Name] = v
				}
			}
		}
	}
	u, okU := found["UID"]
	g, okG := found["GID"]
	if !okU || !okG {
		return 0, 0, fmt.Errorf("%s: constants UID and GID not found", file)
	}
	return u, g, nil
}

// TestImageUserMatchesPods: the pods of every service run as the user the
// image is built for, a numeric non-root one, so runAsNonRoot can check it
// and files the image owns stay readable.
func TestImageUserMatchesPods(t *testing.T) {
	uid, gid, err := imageIDs(filepath.Join(repoRoot, imageBuilder))
	if err != nil {
		t.Fatal(err)
	}
	if uid == 0 || gid == 0 {
		t.Fatalf("images run as %d:%d; want non-root", uid, gid)
	}
	src, err := repoSources()
	if err != nil {
		t.Fatal(err)
	}
	for _, overlay := range overlays {
		w := realWorld(t, overlay)
		for _, svc := range src.services {
			wl, _, err := w.svc(svc)
			if err != nil {
				t.Fatal(err)
			}
			sc := wl.Template.Spec.SecurityContext
			if sc == nil || sc.RunAsUser == nil || sc.RunAsGroup == nil || *sc.RunAsUser != uid || *sc.RunAsGroup != gid {
				t.Errorf("%s %s: pods must run as %d:%d, the image's user", overlay, svc, uid, gid)
			}
		}
	}
}

func TestImageIDsReadsConstants(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "b.go")
	write := func(src string) {
		if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("package b\n\nconst (\n\tUID = 1000\n\tGID = 0o1751\n)\n")
	if u, g, err := imageIDs(file); err != nil || u != 1000 || g != 1001 {
		t.Errorf("got %d %d %v", u, g, err)
	}
	write("package b\n\nconst UID = 1\n")
	if _, _, err := imageIDs(file); err == nil {
		t.Error("no GID: want an error")
	}
}
