// Package command is the scaffolding every ml-connector binary shares: run
// the program with a context that ends on SIGINT or SIGTERM (so it can
// drain), and turn a returned error into a message and exit status 1.
package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Main runs run with the command-line arguments until it returns, then
// exits: status 0 on success or flag.ErrHelp (the help was printed), 1
// (after printing "name: error") otherwise.
func Main(name string, run func(ctx context.Context, args []string) error) {
	os.Exit(Run(name, os.Args[1:], os.Stderr, run))
}

// Run is Main without the exit, for tests: it returns the exit status.
func Run(name string, args []string, stderr io.Writer, run func(ctx context.Context, args []string) error) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, args); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}
