// Command jdesim serves a simulated JD Edwards AIS server (package
// jdesim) over HTTP for the demo stack and manual testing, with its
// control API under /_sim/.
//
// Its settings are environment variables; run it with --help to list them.
package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/ml-connector/ml-connector/platform/command"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ml-connector/ml-connector/connectors/jde/jdesim"
	"github.com/ml-connector/ml-connector/platform/config"
)

func main() { command.Main("jdesim", run) }

func run(ctx context.Context, args []string) error {
	env := config.FromOS()
	addr := env.Addr("JDESIM_ADDR", ":8093", "Listener of the simulated AIS server and its /_sim/ control API.")
	opts := jdesim.Options{
		Username:    env.String("JDESIM_USERNAME", "JDE", "User name the simulated AIS accepts."),
		Password:    env.Secret("JDESIM_PASSWORD", "Password the simulated AIS accepts (default JDE).").Reveal(),
		Environment: env.String("JDESIM_ENVIRONMENT", "JDV920", "JDE environment the simulated AIS serves."),
		DateFormat: env.OneOf("JDESIM_DATE_FORMAT", "MDE", "User date format reported at login.",
			"MDE", "DME", "EMD", "MDY", "DMY", "YMD"),
		DateSeparator:    env.String("JDESIM_DATE_SEPARATOR", "/", "User date separator reported at login."),
		SessionLifetime:  env.DurationRange("JDESIM_SESSION_LIFETIME", 60*time.Minute, time.Second, 24*time.Hour, "How long a session token stays valid."),
		ResultSetTimeout: env.DurationRange("JDESIM_RESULT_SET_TIMEOUT", 60*time.Second, time.Second, 24*time.Hour, "How long a paged result set stays open between pages."),
		DateOutput: jdesim.DateOutput(env.OneOf("JDESIM_DATE_OUTPUT", "formatted", "How the data service renders dates.",
			"formatted", "julian", "compact")),
		AmountOutput: jdesim.AmountOutput(env.OneOf("JDESIM_AMOUNT_OUTPUT", "decimal", "How the data service renders amounts.",
			"decimal", "string", "implied")),
		ReceiptOrchestration: env.String("JDESIM_RECEIPT_ORCHESTRATION", "MLC_PostReceipt", "Name of the receipt orchestration."),
		FailureOrchestration: env.String("JDESIM_FAILURE_ORCHESTRATION", "MLC_PaymentFailure", "Name of the payment failure orchestration."),
		RefundOrchestration:  env.String("JDESIM_REFUND_ORCHESTRATION", "MLC_RefundOutcome", "Name of the refund outcome orchestration."),
		MandateOrchestration: env.String("JDESIM_MANDATE_ORCHESTRATION", "MLC_MandateStatus", "Name of the mandate status orchestration."),
		ReceiptsInputOrchestration: env.String("JDESIM_RECEIPTS_INPUT_ORCHESTRATION", "MLC_ReceiptsInput",
			"Name of the standard receipt orchestration (an F03B13Z1 row processed by R03B551)."),
	}
	nodeAddrs := env.String("JDESIM_NODE_ADDRS", "",
		"When set (e.g. 127.0.0.1:8094,127.0.0.1:8095), serve one AIS node per address, sessions bound to their node, "+
			"and on JDESIM_ADDR a cookie-affinity load balancer in front of them (at most 8 nodes).")
	seed := env.String("JDESIM_SEED_COMPANY", "", "When set, seed demo customers and invoices in this company (e.g. 00001).")
	if config.HelpRequested(args) {
		env.Usage(os.Stdout)
		return nil
	}
	if err := env.Err(); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	if opts.Password == "" {
		opts.Password = "JDE"
	}
	sim := jdesim.New(opts)
	if seed != "" {
		sim.SeedDemo(seed)
	}
	var handler http.Handler = sim
	if nodeAddrs != "" {
		addrs := strings.Split(nodeAddrs, ",")
		if len(addrs) > 8 {
			return errors.New("configuration: JDESIM_NODE_ADDRS lists more than 8 nodes")
		}
		urls := map[string]string{}
		for i, a := range addrs {
			l, err := net.Listen("tcp", strings.TrimSpace(a))
			if err != nil {
				return fmt.Errorf("JDESIM_NODE_ADDRS: listen %s: %w", a, err)
			}
			name, self := fmt.Sprintf("n%d", i+1), "http://"+l.Addr().String()
			urls[name] = self
			go func() {
				if err := serve(ctx, l, sim.Node(name, self), "jdesim node "+name); err != nil {
					slog.Error("jdesim node stopped", "node", name, "error", err)
				}
			}()
		}
		b, err := jdesim.NewBalancer(urls)
		if err != nil {
			return err
		}
		handler = b
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	slog.Info("jdesim environment", "environment", opts.Environment)
	return serve(ctx, l, handler, "jdesim")
}

// serve serves h on l until ctx ends.
func serve(ctx context.Context, l net.Listener, h http.Handler, what string) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	slog.Info(what+" listening", "addr", l.Addr().String())
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
