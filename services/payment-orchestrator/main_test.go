package main

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
)

// The settings of issue #17 that panicked (CATCHUP_INTERVAL=0s,
// ERP_WORKERS=-1), ran away (ERP_WORKERS=100000) or silently meant
// something else (MAX_DELIVER=0 became 10, MAX_DELIVER=-1 never
// dead-lettered) are refused at start-up, each named, before anything is
// connected.
func TestRunRefusesOutOfRangeSettings(t *testing.T) {
	t.Setenv("MLC_MASTER_KEY", base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	t.Setenv("NATS_URL", "nats://127.0.0.1:1")
	t.Setenv("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none?sslmode=disable")
	cases := []struct{ name, value, want string }{
		{"CATCHUP_INTERVAL", "0s", "CATCHUP_INTERVAL: 0s is out of range"},
		{"ERP_WORKERS", "-1", "ERP_WORKERS: -1 is out of range"},
		{"ERP_WORKERS", "100000", "ERP_WORKERS: 100000 is out of range"},
		{"GC_WORKERS", "0", "GC_WORKERS: 0 is out of range"},
		{"MAX_DELIVER", "-1", "MAX_DELIVER: -1 is out of range"},
		{"MAX_DELIVER", "0", "MAX_DELIVER: 0 is out of range"},
		{"MAX_DELIVER", "7", "MAX_DELIVER: 7 is out of range (want 8 to 100)"},
		{"MAX_DELIVER", "101", "MAX_DELIVER: 101 is out of range (want 8 to 100)"},
		{"CUSTOMER_WAIT", "0s", "CUSTOMER_WAIT: 0s is out of range"},
		{"DATABASE_POOL_SIZE", "0", "DATABASE_POOL_SIZE: 0 is out of range"},
		{"NATS_STREAM_REPLICAS", "7", "NATS_STREAM_REPLICAS: 7 is out of range"},
		{"SHUTDOWN_TIMEOUT", "0s", "SHUTDOWN_TIMEOUT: 0s is out of range"},
	}
	for _, tc := range cases {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			t.Setenv(tc.name, tc.value)
			err := run(context.Background(), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
