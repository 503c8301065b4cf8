package service_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/ml-connector/ml-connector/platform/config"
	"github.com/ml-connector/ml-connector/platform/service"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

// DEBUG_PPROF_ADDR is off by default, refuses an address beyond this
// host, and when set serves the profiles there and nowhere else.
func TestPprofOnlyOnLoopbackWhenAsked(t *testing.T) {
	base := map[string]string{"NATS_URL": "nats://127.0.0.1:1", "DATABASE_URL": "postgres://postgres@127.0.0.1:1/x"}
	if cfg := service.LoadConfig(config.FromMap(base), "test-service"); cfg.PprofAddr != "" {
		t.Errorf("unset: PprofAddr %q, want none", cfg.PprofAddr)
	}
	for _, bad := range []string{"0.0.0.0:6060", ":6060", "10.1.2.3:6060", "example.com:6060", "127.0.0.1:99999", "localhost"} {
		vars := map[string]string{"DEBUG_PPROF_ADDR": bad}
		for k, v := range base {
			vars[k] = v
		}
		env := config.FromMap(vars)
		service.LoadConfig(env, "test-service")
		if err := env.Err(); err == nil || !strings.Contains(err.Error(), "DEBUG_PPROF_ADDR") {
			t.Errorf("DEBUG_PPROF_ADDR=%s: %v, want it refused by name", bad, err)
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	js := testsupport.StartJetStream(t)
	svc, err := service.Start(t.Context(), testConfig(t, js.URL(), testsupport.PostgresURL(t), "DEBUG_PPROF_ADDR", addr))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	go func() {
		_ = svc.Run(t.Context(), service.Worker{Name: "idle", Run: func(ctx context.Context) error { close(started); <-ctx.Done(); return nil }})
	}()
	<-started
	get := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("http://" + addr + "/debug/pprof/heap"); code != http.StatusOK {
		t.Errorf("heap profile on DEBUG_PPROF_ADDR: %d", code)
	}
	if code := get("http://" + svc.HTTPAddr() + "/debug/pprof/heap"); code == http.StatusOK {
		t.Errorf("heap profile served on the internal HTTP address too")
	}
}
