package pin

import (
	"strings"
	"testing"
)

const d1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
const d2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222"

func TestComponent(t *testing.T) {
	imgs, err := ReadDigests(strings.NewReader("# revision abc\nzeta " + d1 + "\nalpha " + d2 + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := Component(&b, imgs, "ghcr.io/ml-connector", "ghcr.io/ml-connector", "abc"); err != nil {
		t.Fatal(err)
	}
	want := "images:\n  - name: ghcr.io/ml-connector/alpha\n    digest: " + d2 + "\n  - name: ghcr.io/ml-connector/zeta\n    digest: " + d1 + "\n"
	if !strings.HasSuffix(b.String(), want) || !strings.Contains(b.String(), "kind: Component") || !strings.Contains(b.String(), "revision abc") {
		t.Errorf("got:\n%s", b.String())
	}
	b.Reset()
	if err := Component(&b, imgs[:1], "ghcr.io/ml-connector", "registry.example.com:5000/mlc", "abc"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "    newName: registry.example.com:5000/mlc/zeta\n    digest: "+d1) {
		t.Errorf("another registry: got:\n%s", b.String())
	}
}

func TestReadDigestsRejects(t *testing.T) {
	for _, in := range []string{
		"",
		"svc sha256:abc\n",
		"svc " + d1 + " extra\n",
		"Svc " + d1 + "\n",
		"svc " + d1 + "\nsvc " + d2 + "\n",
	} {
		if _, err := ReadDigests(strings.NewReader(in)); err == nil {
			t.Errorf("%q: want an error", in)
		}
	}
	if err := Component(new(strings.Builder), []Image{{"a", d1}}, "ghcr.io/x", "Bad Registry", "r"); err == nil {
		t.Error("a malformed registry: want an error")
	}
}
