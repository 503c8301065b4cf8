package command_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/platform/command"
)

func TestRun(t *testing.T) {
	var stderr bytes.Buffer
	if got := command.Run("svc", []string{"--x"}, &stderr, func(_ context.Context, args []string) error {
		if len(args) != 1 || args[0] != "--x" {
			t.Errorf("args %v", args)
		}
		return nil
	}); got != 0 || stderr.Len() != 0 {
		t.Errorf("success: status %d, stderr %q", got, stderr.String())
	}
	if got := command.Run("svc", nil, &stderr, func(context.Context, []string) error { return errors.New("boom") }); got != 1 || stderr.String() != "svc: boom\n" {
		t.Errorf("failure: status %d, stderr %q", got, stderr.String())
	}
	stderr.Reset()
	helped := func(context.Context, []string) error { return fmt.Errorf("usage printed: %w", flag.ErrHelp) }
	if got := command.Run("svc", []string{"--help"}, &stderr, helped); got != 0 || stderr.Len() != 0 {
		t.Errorf("help: status %d, stderr %q", got, stderr.String())
	}
	// SIGTERM ends the context, which is how services drain.
	got := command.Run("svc", nil, &stderr, func(ctx context.Context, _ []string) error {
		_ = syscall.Kill(syscall.Getpid(), syscall.SIGTERM)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Second):
			return errors.New("context not cancelled by SIGTERM")
		}
	})
	if got != 0 {
		t.Errorf("SIGTERM: status %d, stderr %q", got, stderr.String())
	}
}
