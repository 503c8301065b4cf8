package service_test

import (
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/platform/config"
	"github.com/ml-connector/ml-connector/platform/service"
)

// Open answers --help without connecting anywhere, and names every
// setting out of range, the service's own included, before connecting.
func TestOpenHelpAndSettings(t *testing.T) {
	// Nothing listens on these: an Open that tried to connect would fail
	// with a connection error instead of the answers below.
	vars := map[string]string{"NATS_URL": "nats://127.0.0.1:1", "DATABASE_URL": "postgres://postgres@127.0.0.1:1/x", "HTTP_ADDR": "127.0.0.1:0"}
	env := config.FromMap(vars)
	cfg := service.LoadConfig(env, "test-service")
	env.DurationRange("TEST_INTERVAL", time.Minute, time.Second, time.Hour, "A service's own setting.")
	if svc, err := service.Open(t.Context(), env, cfg, []string{"--help"}); svc != nil || !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v, %v; want flag.ErrHelp", svc, err)
	}

	vars["TEST_INTERVAL"] = "0s"
	vars["DATABASE_POOL_SIZE"] = "1"
	env = config.FromMap(vars)
	cfg = service.LoadConfig(env, "test-service")
	env.DurationRange("TEST_INTERVAL", time.Minute, time.Second, time.Hour, "A service's own setting.")
	_, err := service.Open(t.Context(), env, cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "TEST_INTERVAL") || !strings.Contains(err.Error(), "DATABASE_POOL_SIZE") {
		t.Fatalf("out-of-range settings: %v; want both named", err)
	}
}
