package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadCommonNATSCredentials(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, []byte("pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := FromMap(map[string]string{"NATS_URL": "tls://nats:4222", "NATS_USER": "gc-webhook", "NATS_PASSWORD": "pw", "NATS_CA_FILE": ca})
	c := LoadCommon(e)
	checkErrs(t, e, nil)
	if c.NATSUser != "gc-webhook" || c.NATSPassword.Reveal() != "pw" || c.NATSCAFile != ca {
		t.Errorf("got user %q password %v CA %q", c.NATSUser, c.NATSPassword, c.NATSCAFile)
	}

	e = FromMap(nil)
	c = LoadCommon(e)
	checkErrs(t, e, nil)
	if c.NATSUser != "" || !c.NATSPassword.Empty() || c.NATSCAFile != "" {
		t.Error("credentials out of nothing")
	}

	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"NATS_PASSWORD": "pw"}, "NATS_PASSWORD: set without NATS_USER"},
		{map[string]string{"NATS_CA_FILE": filepath.Join(t.TempDir(), "missing.crt")}, "NATS_CA_FILE: "},
	} {
		e := FromMap(tc.env)
		LoadCommon(e)
		if err := e.Err(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.env, err, tc.want)
		}
		if err := e.Err(); err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("the password reached an error: %v", err)
		}
	}
}
