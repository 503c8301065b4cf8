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
	"time"

	"github.com/ml-connector/ml-connector/platform/command"
	"github.com/ml-connector/ml-connector/platform/config"
	"github.com/ml-connector/ml-connector/platform/connections"
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
	maxBody := env.IntRange("WEBHOOK_MAX_BODY_BYTES", webhook.DefaultMaxBody, 64<<10, 16<<20, "Largest webhook body accepted; larger ones get 413.")
	maxEvents := env.IntRange("WEBHOOK_MAX_EVENTS", webhook.DefaultMaxEvents, 1, 10000, "Most events accepted in one webhook request; more get 413 (GoCardless is said to send up to 250).")
	maxConcurrent := env.IntRange("WEBHOOK_MAX_CONCURRENT", webhook.DefaultMaxConcurrent, 1, 256,
		"Webhook requests read and published at once; with WEBHOOK_MAX_BODY_BYTES it bounds memory (docs/benchmarks.md).")
	queueWait := env.DurationRange("WEBHOOK_QUEUE_WAIT", webhook.DefaultQueueWait, time.Millisecond, 9*time.Second,
		"How long a request waits for a free slot before it is answered 503 with Retry-After.")
	publishTimeout := env.DurationRange("WEBHOOK_PUBLISH_TIMEOUT", 8*time.Second, 100*time.Millisecond, 9*time.Second,
		"How long to wait for JetStream before answering 503 (GoCardless gives up after 10s).")
	if connection != "" && !connections.ValidName(connection) {
		env.Errorf("GC_WEBHOOK_CONNECTION", "must be a connection name: 1 to 63 letters, digits, '.', '_' or '-'")
	}
	svc, err := service.Open(ctx, env, cfg, args)
	if err != nil {
		return err
	}
	registry := webhook.NewRegistrySecrets(svc.Connections, 30*time.Second)
	whCfg := webhook.Config{
		Connection:     connection,
		Registry:       registry,
		MaxBody:        int64(maxBody),
		PublishTimeout: publishTimeout,
		MaxEvents:      maxEvents,
		MaxConcurrent:  maxConcurrent,
		QueueWait:      queueWait,
		MaxPayload:     svc.Bus.Conn().MaxPayload(),
	}
	for _, s := range secrets {
		whCfg.Secrets = append(whCfg.Secrets, []byte(s.Reveal()))
	}
	// Without any secret every webhook would be refused: not ready, so a
	// deploy that forgot GC_WEBHOOK_SECRET does not take traffic.
	svc.Health.Add("webhook_secrets", webhook.SecretsCheck(len(secrets) > 0, registry))
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
