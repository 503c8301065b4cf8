package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	"github.com/ml-connector/ml-connector/platform/config"
	"github.com/ml-connector/ml-connector/platform/logging"
	"github.com/ml-connector/ml-connector/platform/secrets"
)

// settings are gcsim's environment variables, read and checked.
type settings struct {
	addr       string
	tokens     []secrets.Value
	hookURL    string
	hookSecret secrets.Value
	batch      int
	linger     time.Duration
	attempts   int
	retryBase  time.Duration
	retryMax   time.Duration
	rateLimit  int
	rateWindow time.Duration
	clock      string
	speed      int
	start      string
	tick       time.Duration
	randomSeed int
	scenarios  string
	seedFile   string
	creditors  []string
	approved   []string
	notify     bool
	fees       gcsim.Fees
	logLevel   slog.Level
}

func loadConfig(env *config.Env) settings {
	var s settings
	s.addr = env.Addr("GCSIM_ADDR", ":8090", "Listen address of the API and of the control API (/_sim/).")
	s.tokens = env.SecretList("GCSIM_ACCESS_TOKENS",
		"Accepted access tokens (Authorization: Bearer ...), comma-separated. At least one is required.")
	if len(s.tokens) == 0 {
		env.Errorf("GCSIM_ACCESS_TOKENS", "%w", config.ErrMissing)
	}
	if u := env.URL("GCSIM_WEBHOOK_URL", "", "Where webhooks are POSTed; unset, no webhooks are sent.", "http", "https"); u != nil {
		s.hookURL = u.String()
	}
	s.hookSecret = env.Secret("GCSIM_WEBHOOK_SECRET", "Webhook signing secret (used as given). Required with GCSIM_WEBHOOK_URL.")
	if s.hookURL != "" && s.hookSecret.Empty() {
		env.Errorf("GCSIM_WEBHOOK_SECRET", "is required when GCSIM_WEBHOOK_URL is set")
	}
	// GoCardless's own batch size is not documented (about 250 is the
	// figure quoted, see /work/shared/reference/gocardless.md); up to
	// gc-webhook's default cap of 1000 lets a test reach that cap.
	s.batch = env.IntRange("GCSIM_WEBHOOK_BATCH_SIZE", gcsim.DefaultWebhookBatchSize, 1, 1000, "Most events per webhook request.")
	s.linger = env.DurationRange("GCSIM_WEBHOOK_LINGER", 500*time.Millisecond, 0, time.Minute,
		"How long to collect events into one webhook request before sending it.")
	s.attempts = env.IntRange("GCSIM_WEBHOOK_ATTEMPTS", gcsim.DefaultWebhookAttempts, 1, 100,
		"Most attempts per webhook request before it is marked failed.")
	s.retryBase = env.DurationRange("GCSIM_WEBHOOK_RETRY_BASE", 10*time.Second, time.Millisecond, time.Hour,
		"Wait before the first webhook retry; it doubles with each further retry.")
	s.retryMax = env.DurationRange("GCSIM_WEBHOOK_RETRY_MAX", gcsim.DefaultWebhookRetryMax, time.Millisecond, 24*time.Hour, "Longest wait between webhook retries.")
	if s.retryMax < s.retryBase {
		env.Errorf("GCSIM_WEBHOOK_RETRY_MAX", "%s is shorter than GCSIM_WEBHOOK_RETRY_BASE (%s)", s.retryMax, s.retryBase)
	}
	s.rateLimit = env.IntRange("GCSIM_RATE_LIMIT", gcsim.DefaultRateLimit, 1, 1_000_000, "Requests allowed per token per rate window.")
	s.rateWindow = env.DurationRange("GCSIM_RATE_WINDOW", gcsim.DefaultRateWindow, time.Second, 24*time.Hour, "Rate-limit window.")
	s.clock = env.OneOf("GCSIM_CLOCK", "real",
		"real: simulated time follows the wall clock; scaled: it runs GCSIM_CLOCK_SPEED times faster;\n"+
			"manual: it moves only through POST /_sim/clock/advance. All three can be advanced.",
		"real", "scaled", "manual")
	s.speed = env.IntRange("GCSIM_CLOCK_SPEED", 1440, 1, 1_000_000, "Speed of the scaled clock (1440: a simulated day per minute).")
	s.start = env.String("GCSIM_CLOCK_START", "", "Start time (RFC 3339) of a manual or scaled clock; default now.")
	s.tick = env.DurationRange("GCSIM_TICK", gcsim.DefaultTickInterval, time.Millisecond, time.Hour, "How often due lifecycle transitions are applied (real and scaled clocks).")
	s.randomSeed = env.IntRange("GCSIM_RANDOM_SEED", 0, 0, math.MaxInt, "Seed for IDs and random faults; 0 picks one at random.")
	s.scenarios = env.String("GCSIM_SCENARIOS", "",
		"Outcome rules: 'builtin', a JSON array of rules, or the path of a file holding one.\nUnset, everything succeeds.")
	s.seedFile = env.String("GCSIM_SEED_FILE", "",
		"JSON file of customers, customer_bank_accounts and mandates to start with.")
	s.creditors = env.List("GCSIM_CREDITORS", "",
		"Creditors as ID=Name, comma-separated (IDs start with CR); default one GB creditor "+gcsim.DefaultCreditorID+".")
	for _, c := range s.creditors {
		if id, name, ok := strings.Cut(c, "="); !ok || !strings.HasPrefix(id, "CR") || name == "" {
			env.Errorf("GCSIM_CREDITORS", "%q is not ID=Name with an ID starting with CR", c)
		}
	}
	s.approved = env.List("GCSIM_APPROVED_CREDITORS", "",
		"IDs of creditors GoCardless has approved for custom payment pages (direct bank account and mandate\n"+
			"creation, own Bacs references); '*' approves all. Unset, none is: mandates go through billing requests.")
	known := []string{gcsim.DefaultCreditorID}
	if len(s.creditors) > 0 {
		known = nil
		for _, c := range s.creditors {
			id, _, _ := strings.Cut(c, "=")
			known = append(known, id)
		}
	}
	for _, id := range s.approved {
		if id != "*" && !slices.Contains(known, id) {
			env.Errorf("GCSIM_APPROVED_CREDITORS", "%q is not one of the creditors (%s) or *", id, strings.Join(known, ", "))
		}
	}
	s.notify = env.Bool("GCSIM_NOTIFY_MANDATE_REQUESTS", false,
		"Accept the notify action for mandate-only billing requests (GoCardless documents it for Pay by Bank only).")
	// Fee ranges are gcsim.Fees's own.
	s.fees.BasisPoints = env.IntRange("GCSIM_FEE_BASIS_POINTS", gcsim.DefaultFees.BasisPoints, 0, 10000,
		"GoCardless's fee per paid-out payment, in basis points of its amount (deducted from payouts).")
	s.fees.Fixed = int64(env.IntRange("GCSIM_FEE_FIXED", int(gcsim.DefaultFees.Fixed), 0, 100000,
		"Fixed part of the fee per paid-out payment, in minor units of its currency."))
	s.fees.Cap = int64(env.IntRange("GCSIM_FEE_CAP", int(gcsim.DefaultFees.Cap), 0, 10000000,
		"Most a payment's fee comes to before VAT, in minor units; 0: uncapped."))
	s.fees.Surcharge = int64(env.IntRange("GCSIM_FEE_SURCHARGE", int(gcsim.DefaultFees.Surcharge), 0, 100000,
		"Surcharge per charge-back or settled late failure, in minor units before VAT."))
	if lvl := env.OneOf(config.VarLogLevel, config.DefaultLogLevel, "Minimum log level.", "debug", "info", "warn", "error"); lvl != "" {
		s.logLevel, _ = logging.ParseLevel(lvl)
	}
	return s
}

// build turns the settings into simulator options and seed data, reading
// the scenario and seed files.
func (s settings) build(log *slog.Logger) (gcsim.Options, gcsim.SeedData, error) {
	o := gcsim.Options{
		RateLimit:    s.rateLimit,
		RateWindow:   s.rateWindow,
		TickInterval: s.tick,
		Seed:         uint64(s.randomSeed),
		Logger:       log,
		Webhook: gcsim.WebhookOptions{
			URL:         s.hookURL,
			Secret:      s.hookSecret.Reveal(),
			BatchSize:   s.batch,
			Linger:      s.linger,
			MaxAttempts: s.attempts,
			RetryBase:   s.retryBase,
			RetryMax:    s.retryMax,
		},
	}
	for _, t := range s.tokens {
		o.Tokens = append(o.Tokens, t.Reveal())
	}
	for _, c := range s.creditors {
		id, name, _ := strings.Cut(c, "=")
		o.Creditors = append(o.Creditors, gcsim.Creditor{ID: id, Name: name})
	}
	if len(o.Creditors) == 0 && len(s.approved) > 0 {
		o.Creditors = []gcsim.Creditor{{ID: gcsim.DefaultCreditorID, Name: "Simulated Creditor Ltd"}}
	}
	for i, c := range o.Creditors {
		if slices.Contains(s.approved, "*") || slices.Contains(s.approved, c.ID) {
			o.Creditors[i].CustomPaymentPagesEnabled = true
			o.Creditors[i].CustomPaymentReferences = true
		}
	}
	o.NotifyMandateRequests = s.notify
	fees := s.fees
	o.Fees = &fees
	start := time.Now()
	if s.start != "" {
		t, err := time.Parse(time.RFC3339, s.start)
		if err != nil {
			return o, gcsim.SeedData{}, fmt.Errorf("GCSIM_CLOCK_START: %q is not an RFC 3339 time", s.start)
		}
		start = t
	}
	switch s.clock {
	case "manual":
		o.Clock = gcsim.NewManualClock(start)
	case "scaled":
		o.Clock = gcsim.NewScaledClock(start, s.speed)
	default:
		o.Clock = gcsim.NewRealClock()
	}
	var err error
	if o.Scenarios, err = loadScenarios(s.scenarios); err != nil {
		return o, gcsim.SeedData{}, fmt.Errorf("GCSIM_SCENARIOS: %w", err)
	}
	var seed gcsim.SeedData
	if s.seedFile != "" {
		b, err := os.ReadFile(s.seedFile)
		if err != nil {
			return o, seed, fmt.Errorf("GCSIM_SEED_FILE: %w", err)
		}
		if err := json.Unmarshal(b, &seed); err != nil {
			return o, seed, fmt.Errorf("GCSIM_SEED_FILE %s: %w", s.seedFile, err)
		}
	}
	return o, seed, nil
}

func loadScenarios(v string) ([]gcsim.Rule, error) {
	switch {
	case v == "":
		return nil, nil
	case v == "builtin":
		return gcsim.BuiltinScenarios(), nil
	}
	b := []byte(v)
	if !strings.HasPrefix(strings.TrimSpace(v), "[") {
		var err error
		if b, err = os.ReadFile(v); err != nil {
			return nil, err
		}
	}
	var rules []gcsim.Rule
	if err := json.Unmarshal(b, &rules); err != nil {
		return nil, fmt.Errorf("not a JSON array of rules: %w", err)
	}
	return rules, nil
}
