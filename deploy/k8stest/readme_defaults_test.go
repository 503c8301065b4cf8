package k8stest

import (
	"go/constant"
	"os"
	"path"
	"regexp"
	"strings"
	"testing"
	"time"
)

// backticked finds the `...` items of a README table cell, in order.
var backticked = regexp.MustCompile("`([^`]*)`|—")

// The settings table of the top-level README promises a default for each
// variable; issue #17 found one that was not the code's (MAX_DELIVER). Every
// default it gives must be the one the services' source passes to config.
func TestREADMEDefaultsAreTheSourceDefaults(t *testing.T) {
	src, err := repoSources()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for line := range strings.SplitSeq(string(raw), "\n") {
		cells := strings.Split(line, " | ")
		if !strings.HasPrefix(line, "| `") || len(cells) < 3 {
			continue
		}
		names := backticked.FindAllStringSubmatch(strings.TrimPrefix(cells[0], "| "), -1)
		defs := backticked.FindAllStringSubmatch(cells[1], -1)
		if len(names) != len(defs) {
			continue // a row that does not pair names with defaults
		}
		for i, n := range names {
			name, doc := n[1], defs[i][1]
			if !envName.MatchString(name) || defs[i][0] == "—" {
				continue
			}
			for _, svc := range src.services {
				s, ok := src.reads[svc].Settings[name]
				if !ok || s.Def == nil {
					continue
				}
				checked++
				if !sameDefault(s, doc) {
					t.Errorf("README: %s defaults to %q, but services/%s passes %s (%s)", name, doc, svc, s.Def.ExactString(), s.Pos)
				}
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d README defaults compared with the source; is the settings table still there?", checked)
	}
}

func sameDefault(s setting, doc string) bool {
	switch s.Def.Kind() {
	case constant.String:
		return constant.StringVal(s.Def) == doc
	case constant.Int:
		n, _ := constant.Int64Val(s.Def)
		if s.Method == "Duration" {
			d, err := time.ParseDuration(doc)
			return err == nil && int64(d) == n
		}
		return s.Def.ExactString() == doc
	case constant.Bool:
		return (constant.BoolVal(s.Def) && doc == "true") || (!constant.BoolVal(s.Def) && doc == "false")
	}
	return true
}
