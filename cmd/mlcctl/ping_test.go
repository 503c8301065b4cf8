package main

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	"github.com/ml-connector/ml-connector/connectors/ifscloud/ifssim"
	"github.com/ml-connector/ml-connector/connectors/jde/jdesim"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

func TestConnectionsPing(t *testing.T) {
	gc := gcsim.NewServer(t, gcsim.Options{Tokens: []string{"gc-good-token-123456"}})
	ifs := httptest.NewServer(ifssim.New(ifssim.Config{Budget: -1}))
	t.Cleanup(ifs.Close)
	jde := httptest.NewServer(jdesim.New(jdesim.Options{}))
	t.Cleanup(jde.Close)
	db := testsupport.PostgresURL(t)
	if _, err := mlcctl(t, db, "", "migrate"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	secret := func(name, value string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(value), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	adds := [][]string{
		{"--name", "gc-ok", "--kind", "gocardless", "--settings", `{"base_url":"` + gc.URL + `"}`, "--secret", "access_token=@" + secret("t1", "gc-good-token-123456")},
		{"--name", "gc-bad-token", "--kind", "gocardless", "--settings", `{"base_url":"` + gc.URL + `"}`, "--secret", "access_token=@" + secret("t2", "gc-wrong-token-98765")},
		{"--name", "ifs-ok", "--kind", "ifs", "--settings", `{"base_url":"` + ifs.URL + `","client_id":"mlc","company_codes":["10"]}`, "--secret", "client_secret=@" + secret("s1", "secret")},
		{"--name", "ifs-bad-secret", "--kind", "ifs", "--settings", `{"base_url":"` + ifs.URL + `","client_id":"mlc","company_codes":["10"]}`, "--secret", "client_secret=@" + secret("s2", "not-the-secret")},
		{"--name", "jde-ok", "--kind", "jde", "--settings", `{"base_url":"` + jde.URL + `","username":"JDE","company_codes":["00001"]}`, "--secret", "password=@" + secret("p1", "JDE")},
		{"--name", "jde-down", "--kind", "jde", "--settings", `{"base_url":"http://127.0.0.1:1","username":"JDE","company_codes":["00001"]}`, "--secret", "password=@" + secret("p2", "JDE")},
	}
	for _, a := range adds {
		if out, err := mlcctl(t, db, "", append([]string{"connections", "add"}, a...)...); err != nil {
			t.Fatalf("%v: %v %s", a, err, out)
		}
	}
	out, err := mlcctl(t, db, "", "connections", "ping")
	if err == nil || !strings.Contains(err.Error(), "3 connection(s) failed") {
		t.Errorf("ping: %v, want 3 failures", err)
	}
	want := map[string]string{
		"gc-ok":          "ok",
		"gc-bad-token":   "credentials refused",
		"ifs-ok":         "ok",
		"ifs-bad-secret": "credentials refused",
		"jde-ok":         "ok",
		"jde-down":       "host unreachable",
	}
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 3 {
			continue
		}
		if w, ok := want[fields[0]]; ok {
			if !strings.Contains(line, w) {
				t.Errorf("%s: %q, want %q", fields[0], line, w)
			}
			delete(want, fields[0])
		}
		for _, s := range []string{"gc-good-token-123456", "gc-wrong-token-98765", "not-the-secret"} {
			if strings.Contains(line, s) {
				t.Errorf("ping output shows a secret: %s", line)
			}
		}
	}
	if len(want) > 0 {
		t.Errorf("connections missing from the output: %v\n%s", want, out)
	}
	if out, err := mlcctl(t, db, "", "connections", "ping", "gc-ok", "jde-ok"); err != nil || !strings.Contains(out, "creditors CR") {
		t.Errorf("ping of named connections: %v\n%s", err, out)
	}
}
