package service

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/ml-connector/ml-connector/platform/config"
)

// Open is the step every service binary takes once it has read its
// settings from env (the common ones with LoadConfig, then its own). With
// -h or --help among args it prints them all and returns flag.ErrHelp
// (command.Run exits 0 on it). Otherwise every setting out of range is
// named in one error before anything connects; then the service starts
// with the environment's secrets redacted from its logs.
func Open(ctx context.Context, env *config.Env, cfg Config, args []string) (*Service, error) {
	if config.HelpRequested(args) {
		env.Usage(os.Stdout)
		return nil, flag.ErrHelp
	}
	if err := env.Err(); err != nil {
		return nil, fmt.Errorf("configuration:\n%w", err)
	}
	return Start(ctx, cfg, env.Secrets()...)
}
