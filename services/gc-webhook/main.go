// Command gc-webhook receives GoCardless webhooks, verifies their signatures
// and publishes each event on mlc.gc.<resource_type>.<action>, answering
// GoCardless only once every event is durable on JetStream.
//
// Its settings are environment variables; run it with --help to list them.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/ml-connector/ml-connector/platform/command"
	"github.com/ml-connector/ml-connector/platform/config"
	"github.com/ml-connector/ml-connector/platform/service"
	"github.com/ml-connector/ml-connector/services/gc-webhook/internal/webhook"
)

func main() { command.Main("gc-webhook", run) }

func run(ctx context.Context, args []string) error {
	env := config.FromOS()
	cfg := service.LoadConfig(env, "gc-webhook")
	addr := env.Addr(config.VarWebhookAddr, config.DefaultWebhookAddr, "Public listener for GoCardless webhooks (POST /webhooks/gocardless[/{connection}]).")
	secrets := env.SecretList(config.VarGCWebhookSecret, "Webhook endpoint secrets for POST /webhooks/gocardless, comma-separated (old and new during a rotation).")
	connection := env.String("GC_WEBHOOK_CONNECTION", "", "GoCardless connection name recorded with events received on /webhooks/gocardless.")
	maxBody := env.Int("WEBHOOK_MAX_BODY_BYTES", 2<<20, "Largest webhook body accepted; larger ones get 413.")
	publishTimeout := env.Duration("WEBHOOK_PUBLISH_TIMEOUT", 8*time.Second, "How long to wait for JetStream before answering 503 (GoCardless gives up after 10s).")
	if config.HelpRequested(args) {
		env.Usage(os.Stdout)
		return nil
	}
	if err := env.Err(); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	svc, err := service.Start(ctx, cfg, env.Secrets()...)
	if err != nil {
		return err
	}
	whCfg := webhook.Config{
		Connection:     connection,
		Registry:       webhook.NewRegistrySecrets(svc.Connections, 30*time.Second),
		MaxBody:        int64(maxBody),
		PublishTimeout: publishTimeout,
	}
	for _, s := range secrets {
		whCfg.Secrets = append(whCfg.Secrets, []byte(s.Reveal()))
	}
	handler, err := webhook.New(whCfg, svc.Bus, svc.Log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	return svc.Run(ctx, service.HTTPServer("webhook-listener", ln, handler))
}
