package service

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// HTTPServer is a Worker serving h on ln until its context ends, then
// shutting down gracefully: requests in flight are answered before it
// returns, so a webhook being made durable is not cut off by SIGTERM.
func HTTPServer(name string, ln net.Listener, h http.Handler) Worker {
	return Worker{Name: name, Run: func(ctx context.Context) error {
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       15 * time.Second,
			WriteTimeout:      20 * time.Second,
			IdleTimeout:       90 * time.Second,
		}
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
		}
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
		defer cancel()
		err := srv.Shutdown(shutdownCtx)
		if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
			err = serveErr
		}
		return err
	}}
}
