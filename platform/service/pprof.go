package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/ml-connector/ml-connector/platform/config"
)

// loadPprofAddr reads DEBUG_PPROF_ADDR: off unless set, and then only on
// a loopback address. Profiles show heap contents and goroutine stacks
// (which may hold invoice data and keys in flight), so they are never
// served on the internal HTTP address Kubernetes probes and scrapes;
// reach them with kubectl port-forward, or locally as the demo's
// benchmark does.
func loadPprofAddr(env *config.Env) string {
	addr := env.Addr("DEBUG_PPROF_ADDR", "",
		"Where to serve Go's /debug/pprof/ profiles (heap, goroutines, CPU) for debugging; a loopback\n"+
			"host:port only (127.0.0.1:6060). Unset (the default): no profiles are served.")
	if addr == "" {
		return ""
	}
	host, _, _ := net.SplitHostPort(addr) // checked by Addr
	if !config.IsLoopbackHost(host) {
		env.Errorf("DEBUG_PPROF_ADDR", "%q is not a loopback address (127.0.0.1, ::1 or localhost): profiles are not served beyond this host", addr)
		return ""
	}
	return addr
}

// pprofWorker serves the profiles on ln until ctx ends.
func pprofWorker(ln net.Listener) Worker {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return Worker{Name: "pprof", Run: func(ctx context.Context) error {
		// No write timeout: a CPU profile or trace streams for as long as
		// it was asked (?seconds=).
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		select {
		case err := <-errc:
			return fmt.Errorf("pprof: %w", err)
		case <-ctx.Done():
		}
		_ = srv.Close() // profiles in flight are not worth waiting for
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}}
}
