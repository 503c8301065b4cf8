package gocardless_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	"github.com/ml-connector/ml-connector/platform/retry"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/testsupport/fake"
)

// TestTokenNeverLeaks drives the client through successes, 4xx, 5xx
// retries, 429 waits and network failures, and searches every error,
// log line and span for the token.
func TestTokenNeverLeaks(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	var logs fake.Log
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	e := setup(t, gcsim.Options{}, gocardless.WithTracerProvider(tp), gocardless.WithLogger(log))
	ctx := context.Background()
	_, _, md := e.customer(t, 1)

	var errs []error
	keep := func(err error) {
		if err == nil {
			t.Fatal("expected an error")
		}
		errs = append(errs, err)
	}
	_, _, err := e.gc.CreatePayment(ctx, "bad", paymentParams(md, 0))
	keep(err)
	_, err = e.gc.GetPayment(ctx, "PM0000MISSING")
	keep(err)

	if err := e.sim.SetFaults(gcsim.Faults{ServerErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	_, err = e.gc.GetMandate(ctx, md)
	keep(err)
	if err := e.sim.SetFaults(gcsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	// The token is refused: GoCardless does not echo it, nor may we.
	e.sim.SetTokenActive(token, false)
	_, err = e.gc.GetMandate(ctx, md)
	keep(err)
	e.sim.SetTokenActive(token, true)

	// Last, as it holds this client's calls for a minute: a 429 whose
	// wait outlasts the deadline.
	if err := e.sim.SetFaults(gcsim.Faults{RateLimitNext: 1, RateLimitRetryAfter: time.Minute}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	_, err = e.gc.GetMandate(short, md)
	cancel()
	keep(err)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	gc, err := gocardless.New(dead, secrets.NewValue(token), gocardless.WithTracerProvider(tp), gocardless.WithLogger(log),
		gocardless.WithBackoff(retry.Backoff{Base: time.Millisecond, Max: time.Millisecond, Attempts: 2}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = gc.GetPayment(ctx, "PM1")
	keep(err)

	for _, err := range errs {
		for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			if strings.Contains(s, token) {
				t.Errorf("error shows the token: %s", s)
			}
		}
	}

	if !strings.Contains(logs.String(), "retrying") || !strings.Contains(logs.String(), "rate limited") {
		t.Errorf("the retries were not logged, so the log check proves nothing:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("a log line shows the token:\n%s", logs.String())
	}

	spans := rec.Ended()
	if len(spans) < 10 {
		t.Fatalf("only %d spans recorded", len(spans))
	}
	names := map[string]bool{}
	for _, s := range spans {
		names[s.Name()] = true
		texts := []string{s.Name(), s.Status().Description}
		for _, a := range s.Attributes() {
			texts = append(texts, string(a.Key)+"="+a.Value.String())
		}
		for _, ev := range s.Events() {
			texts = append(texts, ev.Name)
			for _, a := range ev.Attributes {
				texts = append(texts, string(a.Key)+"="+a.Value.String())
			}
		}
		for _, txt := range texts {
			if strings.Contains(txt, token) || strings.Contains(strings.ToLower(txt), "authorization") {
				t.Errorf("span %q shows the token or the Authorization header: %s", s.Name(), txt)
			}
		}
	}
	for _, want := range []string{"gocardless POST /payments", "gocardless GET /payments/{id}", "gocardless GET /mandates/{id}"} {
		if !names[want] {
			t.Errorf("no span named %q among %v", want, names)
		}
	}
}
