package testsupport

import (
	"os"
	"os/exec"
	"testing"
)

// Chromium finds Debian's Chromium for the browser journeys. found is
// false on a machine without it, and the caller skips its journey; with
// MLC_BROWSER_REQUIRED set (.ci/run sets it) its absence fails t instead.
func Chromium(t testing.TB) (path string, found bool) {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
	}
	if os.Getenv("MLC_BROWSER_REQUIRED") != "" {
		t.Fatal("Chromium is not installed (apt-get install -y chromium) and MLC_BROWSER_REQUIRED is set")
	}
	return "", false
}
