package k8stest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/yannh/kubeconform/pkg/validator"
)

// schemaDir holds the JSON schemas kubeconform checks the manifests
// against, generated from the kube-apiserver that make k8s-check runs
// (its /openapi/v2), one file per kind in kubeconform's naming.
const schemaDir = "schemas"

// schemaFile is kubeconform's file name for a kind: lower-case kind, the
// first label of the group, the version.
func schemaFile(apiVersion, kind string) string {
	suffix := ""
	if group, version, ok := strings.Cut(apiVersion, "/"); ok {
		suffix = "-" + strings.ToLower(strings.Split(group, ".")[0]) + "-" + strings.ToLower(version)
	} else {
		suffix = "-" + strings.ToLower(apiVersion)
	}
	return strings.ToLower(kind) + suffix + ".json"
}

// standaloneSchemas turns an OpenAPI v2 document into one self-contained
// strict JSON schema per kind named in kinds ("apiVersion/Kind"), as
// openapi2jsonschema --strict --stand-alone does: references inlined,
// no property the API does not define (additionalProperties false),
// int-or-string as either.
func standaloneSchemas(openapi []byte, kinds []string) (map[string][]byte, error) {
	var doc struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(openapi, &doc); err != nil {
		return nil, err
	}
	var inline func(v any, depth int) (any, error)
	inline = func(v any, depth int) (any, error) {
		if depth > 64 {
			return nil, fmt.Errorf("schema nests deeper than 64")
		}
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				def, ok := doc.Definitions[strings.TrimPrefix(ref, "#/definitions/")]
				if !ok {
					return nil, fmt.Errorf("unresolved %s", ref)
				}
				return inline(def, depth+1)
			}
			out := map[string]any{}
			for k, e := range x {
				if k == "x-kubernetes-group-version-kind" || strings.HasPrefix(k, "x-kubernetes-") || k == "description" {
					continue
				}
				ie, err := inline(e, depth+1)
				if err != nil {
					return nil, err
				}
				out[k] = ie
			}
			if out["format"] == "int-or-string" {
				return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}, nil
			}
			if _, has := out["properties"]; has {
				if _, set := out["additionalProperties"]; !set {
					out["additionalProperties"] = false
				}
			}
			return out, nil
		case []any:
			out := make([]any, len(x))
			for i, e := range x {
				ie, err := inline(e, depth+1)
				if err != nil {
					return nil, err
				}
				out[i] = ie
			}
			return out, nil
		}
		return v, nil
	}
	out := map[string][]byte{}
	for name, def := range doc.Definitions {
		gvks, _ := def["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			m, _ := g.(map[string]any)
			apiVersion := fmt.Sprint(m["version"])
			if grp := fmt.Sprint(m["group"]); grp != "" {
				apiVersion = grp + "/" + apiVersion
			}
			if !slices.Contains(kinds, apiVersion+"/"+fmt.Sprint(m["kind"])) {
				continue
			}
			s, err := inline(def, 0)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			b, err := json.MarshalIndent(s, "", " ")
			if err != nil {
				return nil, err
			}
			out[schemaFile(apiVersion, fmt.Sprint(m["kind"]))] = append(b, '\n')
		}
	}
	return out, nil
}

// schemaKinds are the kinds the overlays render (resources of
// apiserver_test.go), Pod for good measure.
func schemaKinds() []string {
	var out []string
	for k := range resources {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestKubeconform validates every rendered overlay with kubeconform,
// strictly, against the committed schemas: the fast, offline version of
// make k8s-check.
func TestKubeconform(t *testing.T) {
	abs, err := filepath.Abs(schemaDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range schemaKinds() {
		apiVersion, kind := k[:strings.LastIndex(k, "/")], k[strings.LastIndex(k, "/")+1:]
		if _, err := os.Stat(filepath.Join(abs, schemaFile(apiVersion, kind))); err != nil {
			t.Errorf("no schema for %s: %v (regenerate: make k8s-check with MLC_UPDATE_SCHEMAS=1)", k, err)
		}
	}
	v, err := validator.New([]string{abs + "/{{ .ResourceKind }}{{ .KindSuffix }}.json"}, validator.Opts{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, overlay := range overlays {
		docs, err := renderDocs(filepath.Join(repoRoot, k8sDir, overlay))
		if err != nil {
			t.Fatal(err)
		}
		stream := bytes.Join(docs, []byte("---\n"))
		n := 0
		for _, r := range v.Validate(overlay, io.NopCloser(bytes.NewReader(stream))) {
			n++
			if r.Status != validator.Valid {
				sig, _ := r.Resource.Signature()
				t.Errorf("%s: %v: status %d: %v %v", overlay, sig, r.Status, r.Err, r.ValidationErrors)
			}
		}
		if n != len(docs) {
			t.Errorf("%s: kubeconform saw %d objects of %d", overlay, n, len(docs))
		}
	}
	// It is strict: a misspelt field fails.
	bad := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  lables: {a: b}\n"
	for _, r := range v.Validate("bad", io.NopCloser(strings.NewReader(bad))) {
		if r.Status != validator.Invalid {
			t.Errorf("a misspelt field: status %d %v", r.Status, r.Err)
		}
	}
}
