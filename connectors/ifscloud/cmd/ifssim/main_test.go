package main

import (
	"context"
	"strings"
	"testing"
)

// Settings out of range stop the simulator before it listens, the error
// naming each variable.
func TestSettingsRangeChecked(t *testing.T) {
	t.Setenv("IFSSIM_ADDR", "127.0.0.1:0")
	t.Setenv("IFSSIM_PAGE_SIZE", "0")
	t.Setenv("IFSSIM_BUDGET", "-2")
	t.Setenv("IFSSIM_TOKEN_TTL", "1ms")
	t.Setenv("IFSSIM_SEED_INVOICES", "many")
	err := run(context.Background(), nil)
	if err == nil {
		t.Fatal("out-of-range settings accepted")
	}
	for _, want := range []string{
		"IFSSIM_PAGE_SIZE: 0 is out of range (want 1 to 100000)",
		"IFSSIM_BUDGET: -2 is out of range",
		"IFSSIM_TOKEN_TTL: 1ms is out of range",
		`IFSSIM_SEED_INVOICES: "many" is not an integer`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
