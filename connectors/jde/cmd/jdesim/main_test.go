package main

import (
	"context"
	"strings"
	"testing"
)

// Settings out of range stop the simulator before it listens, the error
// naming each variable.
func TestSettingsRangeChecked(t *testing.T) {
	t.Setenv("JDESIM_ADDR", "127.0.0.1:0")
	t.Setenv("JDESIM_SESSION_LIFETIME", "0s")
	t.Setenv("JDESIM_RESULT_SET_TIMEOUT", "48h")
	err := run(context.Background(), nil)
	if err == nil {
		t.Fatal("out-of-range settings accepted")
	}
	for _, want := range []string{
		"JDESIM_SESSION_LIFETIME: 0s is out of range (want 1s to 24h0m0s)",
		"JDESIM_RESULT_SET_TIMEOUT: 48h0m0s is out of range",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
