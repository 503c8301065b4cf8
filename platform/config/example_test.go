package config_test

import (
	"fmt"
	"os"
	"time"

	"github.com/ml-connector/ml-connector/platform/config"
)

func Example() {
	env := config.FromMap(map[string]string{ // config.FromOS() in a real main
		"NATS_URL":      "http://nats:4222",
		"DATABASE_URL":  "postgres://app:hunter2@/mlc",
		"POLL_INTERVAL": "30",
	})
	common := config.LoadCommon(env)
	interval := env.DurationRange("POLL_INTERVAL", time.Minute, time.Second, time.Hour, "How often to poll the ERP.")
	webhookSecrets := env.SecretList(config.VarGCWebhookSecret, "GoCardless webhook secrets, comma-separated.")

	if config.HelpRequested(os.Args[1:]) {
		env.Usage(os.Stdout)
		return
	}
	if err := env.Err(); err != nil {
		fmt.Printf("invalid configuration:\n%v\n", err)
		return
	}
	_, _, _ = common, interval, webhookSecrets
	// Output:
	// invalid configuration:
	// NATS_URL: scheme "http" not allowed (want nats, tls, ws, wss)
	// DATABASE_URL: "postgres://app:[REDACTED]@/mlc" has no host
	// POLL_INTERVAL: "30" is not a duration (want e.g. 30s, 5m, 1h30m, from 1s to 1h0m0s)
}
