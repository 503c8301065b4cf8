package k8stest

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case
	args string
}

// stage is one FROM ... section.
type stage struct {
	from, name string
	body       []instruction
}

func parseDockerfile(src string) ([]stage, error) {
	var stages []stage
	var lines []string
	cur := ""
	for l := range strings.SplitSeq(src, "\n") {
		t := strings.TrimSpace(l)
		if cur == "" && (t == "" || strings.HasPrefix(t, "#")) {
			continue
		}
		if strings.HasPrefix(t, "#") {
			continue // comment inside a continued instruction
		}
		if s, ok := strings.CutSuffix(t, "\\"); ok {
			cur += s + " "
			continue
		}
		lines = append(lines, cur+t)
		cur = ""
	}
	for _, l := range lines {
		cmd, args, _ := strings.Cut(l, " ")
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--platform=") })
			st := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				return nil, fmt.Errorf("%s before the first FROM", in.cmd)
			}
			continue
		}
		stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("no FROM")
	}
	return stages, nil
}

func (s stage) all(cmd string) []string {
	var out []string
	for _, in := range s.body {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// dockerignored reports whether the build context leaves out p, for the
// simple patterns .dockerignore uses here (no ** and no ! exceptions:
// those make it fail instead).
func dockerignored(patterns []string, p string) (bool, error) {
	for _, pat := range patterns {
		if strings.Contains(pat, "**") || strings.HasPrefix(pat, "!") {
			return false, fmt.Errorf(".dockerignore pattern %q is beyond what this test understands", pat)
		}
		pat = strings.Trim(path.Clean(pat), "/")
		for q := p; q != "." && q != "/"; q = path.Dir(q) {
			if ok, err := path.Match(pat, q); err != nil {
				return false, err
			} else if ok {
				return true, nil
			}
		}
	}
	return false, nil
}

func readLines(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for l := range strings.SplitSeq(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// dockerfileProblems checks the one Dockerfile that builds every service:
// a static build from the workspace, a distroless or scratch runtime with
// CA certificates, and a numeric non-root user, the one the pods run as
// (podUIDs, by service).
func dockerfileProblems(src string, podUIDs map[string]int64) []string {
	stages, err := parseDockerfile(src)
	if err != nil {
		return []string{err.Error()}
	}
	if len(stages) < 2 {
		return []string{fmt.Sprintf("%d stages, want a build stage and a runtime stage", len(stages))}
	}
	build, final := stages[0], stages[len(stages)-1]
	var parts []string
	for _, in := range build.body {
		parts = append(parts, in.cmd+" "+in.args)
	}
	buildText := strings.Join(parts, "\n")
	var probs []string
	for _, c := range []struct {
		ok  bool
		why string
	}{
		{strings.HasPrefix(build.from, "golang:"), "build stage is " + build.from + ", want golang"},
		{slices.Contains(build.all("ARG"), "SERVICE"), "no ARG SERVICE in the build stage"},
		{regexp.MustCompile(`\bCGO_ENABLED=0\b`).MatchString(buildText), "CGO_ENABLED=0 not set: the binary would not be static"},
		{strings.Contains(buildText, "go build") && strings.Contains(buildText, "./services/${SERVICE}") &&
			slices.ContainsFunc(build.all("COPY"), func(a string) bool { return strings.HasPrefix(a, ". ") }),
			"want COPY . . (the go.work workspace) and go build ./services/${SERVICE}"},
		{strings.HasPrefix(final.from, "gcr.io/distroless/static") ||
			(final.from == "scratch" && slices.ContainsFunc(final.all("COPY"), func(a string) bool { return strings.Contains(a, "ca-certificates") })),
			"runtime image " + final.from + ", want distroless static or scratch with CA certificates"},
		{slices.ContainsFunc(final.all("COPY"), func(a string) bool { return strings.HasPrefix(a, "--from=") }), "runtime stage copies nothing from the build"},
		{len(final.all("ENTRYPOINT")) == 1 && strings.HasPrefix(final.all("ENTRYPOINT")[0], "["), "want one exec-form ENTRYPOINT"},
	} {
		if !c.ok {
			probs = append(probs, c.why)
		}
	}
	users := final.all("USER")
	if len(users) != 1 {
		return append(probs, fmt.Sprintf("runtime stage has %d USER instructions, want 1", len(users)))
	}
	uid, err := strconv.ParseInt(strings.Split(users[0], ":")[0], 10, 64)
	if err != nil || uid == 0 {
		probs = append(probs, fmt.Sprintf("USER %q: want a numeric non-root UID (runAsNonRoot can only verify a number)", users[0]))
	}
	for _, svc := range sortedKeys(podUIDs) {
		if podUIDs[svc] != uid {
			probs = append(probs, fmt.Sprintf("%s: pods run as UID %d, the image as %d", svc, podUIDs[svc], uid))
		}
	}
	return probs
}

func podUIDs(t *testing.T) map[string]int64 {
	t.Helper()
	src, err := repoSources()
	if err != nil {
		t.Fatal(err)
	}
	w := realWorld(t, "overlays/prod")
	out := map[string]int64{}
	for _, svc := range src.services {
		wl, _, err := w.svc(svc)
		if err != nil {
			t.Fatal(err)
		}
		out[svc] = -1
		if sc := wl.Template.Spec.SecurityContext; sc != nil && sc.RunAsUser != nil {
			out[svc] = *sc.RunAsUser
		}
	}
	return out
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	uids := podUIDs(t)
	for _, p := range dockerfileProblems(string(b), uids) {
		t.Error(p)
	}
	src, err := repoSources()
	if err != nil {
		t.Fatal(err)
	}
	// The build's guard accepts exactly the directories with a main.go.
	for _, svc := range src.services {
		if _, err := os.Stat(filepath.Join(repoRoot, "services", svc, "main.go")); err != nil {
			t.Errorf("SERVICE=%s: %v", svc, err)
		}
	}

	mistakes := []struct{ old, new, want string }{
		{"ENV CGO_ENABLED=0", "ENV CGO_ENABLED=1", "CGO_ENABLED=0 not set"},
		{"FROM gcr.io/distroless/static-debian12:nonroot", "FROM debian:bookworm-slim", "runtime image debian:bookworm-slim"},
		{"USER 65532:65532", "USER nonroot", `USER "nonroot": want a numeric non-root UID`},
		{"USER 65532:65532", "USER 0", `USER "0": want a numeric non-root UID`},
		{"USER 65532:65532", "USER 1000", "pods run as UID 65532, the image as 1000"},
		{"ARG SERVICE\nARG TARGETOS", "ARG TARGETOS", "no ARG SERVICE"},
		{"./services/${SERVICE}\n", "./cmd/mlcctl\n", "want COPY . . (the go.work workspace)"},
		{`ENTRYPOINT ["/service"]`, "ENTRYPOINT /service", "want one exec-form ENTRYPOINT"},
	}
	for _, m := range mistakes {
		if strings.Count(string(b), m.old) != 1 {
			t.Errorf("mistake %q no longer applies to the Dockerfile", m.old)
			continue
		}
		probs := dockerfileProblems(strings.Replace(string(b), m.old, m.new, 1), uids)
		if !slices.ContainsFunc(probs, func(p string) bool { return strings.Contains(p, m.want) }) {
			t.Errorf("%q -> %q: want %q, got %q", m.old, m.new, m.want, probs)
		}
	}
}

// TestDockerignore makes sure the build context keeps what go.work needs
// and leaves out what the image must not see.
func TestDockerignore(t *testing.T) {
	patterns := readLines(t, ".dockerignore")
	mustKeep := []string{"go.work", "go.work.sum"}
	for _, l := range readLines(t, "go.work") {
		if dir, ok := strings.CutPrefix(l, "./"); ok {
			mustKeep = append(mustKeep, path.Join(dir, "go.mod"))
		}
	}
	src, err := repoSources()
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range src.services {
		mustKeep = append(mustKeep, "services/"+svc+"/main.go")
	}
	for _, p := range mustKeep {
		ignored, err := dockerignored(patterns, p)
		if err != nil {
			t.Fatal(err)
		}
		if ignored {
			t.Errorf("%s is left out of the build context, but the workspace build needs it", p)
		}
	}
	for _, p := range []string{".git/config", "bin/gc-webhook", ".tools/bin/buf", "webhook.test"} {
		if ignored, err := dockerignored(patterns, p); err != nil || !ignored {
			t.Errorf("%s reaches the build context (err %v)", p, err)
		}
	}
}

// TestDockerignoreMatching pins the pattern matching the test above uses.
func TestDockerignoreMatching(t *testing.T) {
	cases := []struct {
		patterns []string
		path     string
		want     bool
	}{
		{[]string{"bin"}, "bin/x", true},
		{[]string{"bin"}, "cmd/bin", false},
		{[]string{"*.test"}, "webhook.test", true},
		{[]string{"*.test"}, "services/a.test", false},
		{[]string{"deploy/k8s"}, "deploy/k8s/base/x.yaml", true},
		{[]string{"deploy/k8s"}, "deploy/k8stest/go.mod", false},
		{[]string{"deploy"}, "deploy/k8stest/go.mod", true},
		{[]string{"/docs/"}, "docs/benchmarks.md", true},
	}
	for _, c := range cases {
		got, err := dockerignored(c.patterns, c.path)
		if err != nil || got != c.want {
			t.Errorf("%v %s: got %v (%v), want %v", c.patterns, c.path, got, err, c.want)
		}
	}
	for _, bad := range []string{"**/*.go", "!keep"} {
		if _, err := dockerignored([]string{bad}, "x"); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}
