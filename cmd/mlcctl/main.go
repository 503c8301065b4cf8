// Command mlcctl is the operator's tool: it applies database migrations,
// manages the connection registry (ERP tenants and GoCardless accounts, with
// their secrets encrypted) and verifies the audit log.
//
// Secrets are never taken from the command line, where shell history and
// the process list would keep them: they come from a file (NAME=@path) or
// from standard input (NAME=-), without echo on a terminal.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cli := &cli{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, lookup: os.LookupEnv}
	if err := cli.run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "mlcctl: %v\n", err)
		os.Exit(1)
	}
}

type cli struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	lookup func(string) (string, bool)
}
