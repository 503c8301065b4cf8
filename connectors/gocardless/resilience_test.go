package gocardless_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	"github.com/ml-connector/ml-connector/platform/breaker"
	"github.com/ml-connector/ml-connector/platform/retry"
	"github.com/ml-connector/ml-connector/platform/secrets"
)

// createMany creates one payment per key from workers goroutines and
// returns the payments by key.
func createMany(t *testing.T, e *env, mandate string, keys []string, workers int) map[string]*gocardless.Payment {
	t.Helper()
	var mu sync.Mutex
	got := map[string]*gocardless.Payment{}
	work := make(chan string)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for key := range work {
				pm, _, err := e.gc.CreatePayment(context.Background(), key, paymentParams(mandate, 1_000))
				if err != nil {
					t.Errorf("create %s: %v", key, err)
					continue
				}
				mu.Lock()
				got[key] = pm
				mu.Unlock()
			}
		})
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	return got
}

func keys(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return out
}

// checkOnePaymentPerKey checks that every key got a payment, that no two
// keys share one, and that the simulator holds exactly those.
func checkOnePaymentPerKey(t *testing.T, e *env, ks []string, got map[string]*gocardless.Payment) {
	t.Helper()
	ids := map[string]bool{}
	for _, k := range ks {
		pm, ok := got[k]
		if !ok {
			t.Errorf("key %s got no payment", k)
			continue
		}
		if ids[pm.ID] {
			t.Errorf("payment %s returned for two keys", pm.ID)
		}
		ids[pm.ID] = true
	}
	sim := e.sim.Payments()
	if len(sim) != len(ks) {
		t.Errorf("simulator holds %d payments for %d keys", len(sim), len(ks))
	}
	for _, p := range sim {
		if !ids[p.ID] {
			t.Errorf("simulator payment %s was not returned to any caller", p.ID)
		}
	}
}

func TestRateLimitStormRiddenOut(t *testing.T) {
	e := setup(t, gcsim.Options{})
	_, _, md := e.customer(t, 1)
	// The next requests are refused with 429, Remaining 0 and
	// Retry-After: 1, whatever the real budget. Each 429 holds every
	// caller until its reset (as it should: the token's budget is spent),
	// so the storm is kept short to keep the test quick.
	const workers, storm = 8, 4
	if err := e.sim.SetFaults(gcsim.Faults{RateLimitNext: storm}); err != nil {
		t.Fatal(err)
	}
	ks := keys("storm", 3*workers)
	got := createMany(t, e, md, ks, workers)
	checkOnePaymentPerKey(t, e, ks, got)
	if n := e.calls.status(http.StatusTooManyRequests); n != storm {
		t.Errorf("saw %d 429s, want the %d injected", n, storm)
	}
	if s, _ := breaker.State(e.name); s != gobreaker.StateClosed {
		t.Errorf("breaker %s after a ridden-out storm, want closed", s)
	}
}

func TestServerErrorBurstRiddenOut(t *testing.T) {
	for _, afterCommit := range []bool{false, true} {
		t.Run(fmt.Sprint("after commit ", afterCommit), func(t *testing.T) {
			e := setup(t, gcsim.Options{})
			_, _, md := e.customer(t, 1)
			// A burst of 500s; with afterCommit the creates took effect
			// and only the answers were lost, so retries meet the
			// idempotency key.
			if err := e.sim.SetFaults(gcsim.Faults{ServerErrorNext: 10, ServerErrorAfterCommit: afterCommit}); err != nil {
				t.Fatal(err)
			}
			ks := keys("burst", 20)
			got := createMany(t, e, md, ks, 4)
			checkOnePaymentPerKey(t, e, ks, got)
			if n := e.calls.status(http.StatusInternalServerError); n != 10 {
				t.Errorf("saw %d 500s, want the 10 injected", n)
			}
			if afterCommit && e.calls.status(http.StatusConflict) == 0 {
				t.Error("no retry met its idempotency key; the burst did not hit a create")
			}
			// Every retry of a create carried its call's key: the keys
			// sent are exactly the callers', some of them more than once.
			uses := e.calls.keyUses()
			retried := 0
			for _, k := range ks {
				if uses[k] == 0 {
					t.Errorf("key %s never sent", k)
				}
				retried += uses[k] - 1
				delete(uses, k)
			}
			delete(uses, "cu-1")
			delete(uses, "ba-1")
			delete(uses, "md-1")
			if len(uses) != 0 {
				t.Errorf("keys sent that no caller gave: %v", uses)
			}
			if retried == 0 {
				t.Error("no create was retried; the burst proves nothing")
			}
			if s, _ := breaker.State(e.name); s != gobreaker.StateClosed {
				t.Errorf("breaker %s after a ridden-out burst, want closed", s)
			}
		})
	}
}

func TestActionWhoseAnswerWasLost(t *testing.T) {
	e := setup(t, gcsim.Options{})
	ctx := context.Background()
	_, _, md := e.customer(t, 1)
	pm, _, err := e.gc.CreatePayment(ctx, "lost-cancel", paymentParams(md, 1_000))
	if err != nil {
		t.Fatal(err)
	}
	// The cancel takes effect but its answer is a 500; the retry meets
	// cancellation_failed, and the client sees the payment is cancelled.
	if err := e.sim.SetFaults(gcsim.Faults{ServerErrorNext: 1, ServerErrorAfterCommit: true}); err != nil {
		t.Fatal(err)
	}
	c, err := e.gc.CancelPayment(ctx, "cancel:"+pm.ID, pm.ID, gocardless.ActionParams{})
	if err != nil || c.Status != "cancelled" {
		t.Fatalf("cancel with a lost answer: %+v, %v", c, err)
	}
	if e.calls.status(http.StatusUnprocessableEntity) != 1 {
		t.Error("the retry did not meet the state check; the test proves nothing")
	}
	// Without a lost answer, the same refusal is the caller's to see.
	if _, err := e.gc.CancelPayment(ctx, "cancel:"+pm.ID, pm.ID, gocardless.ActionParams{}); !gocardless.HasReason(err, "cancellation_failed") {
		t.Errorf("cancelling again: %v, want cancellation_failed", err)
	}
}

func TestBreakerOpensAndCloses(t *testing.T) {
	const openFor = 100 * time.Millisecond
	e := setup(t, gcsim.Options{},
		gocardless.WithBackoff(retry.Backoff{Base: time.Millisecond, Max: 2 * time.Millisecond, Attempts: 2}),
		gocardless.WithBreaker(t.Name(), breaker.Options{Failures: 3, OpenFor: openFor}))
	ctx := context.Background()
	if err := e.sim.SetFaults(gcsim.Faults{ServerErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		_, err := e.gc.GetCreditor(ctx, gcsim.DefaultCreditorID)
		var ae *gocardless.APIError
		if !errors.As(err, &ae) || ae.Code != 500 || !gocardless.Temporary(err) || errors.Is(err, gocardless.ErrUnavailable) {
			t.Fatalf("call %d during the outage: %v, want the 500", i, err)
		}
	}
	sent := e.calls.requests()
	_, err := e.gc.GetCreditor(ctx, gcsim.DefaultCreditorID)
	if !errors.Is(err, gocardless.ErrUnavailable) || !breaker.IsOpen(err) || !gocardless.Temporary(err) {
		t.Fatalf("call after 3 failed calls: %v, want ErrUnavailable from the open breaker", err)
	}
	if e.calls.requests() != sent {
		t.Error("the open breaker let a request through")
	}

	if err := e.sim.SetFaults(gcsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(openFor)
	if _, err := e.gc.GetCreditor(ctx, gcsim.DefaultCreditorID); err != nil {
		t.Fatalf("first call after recovery: %v", err)
	}
	if s, _ := breaker.State("gocardless/" + t.Name()); s != gobreaker.StateClosed {
		t.Errorf("breaker %s after a successful probe, want closed", s)
	}
}

func TestClientErrorsDoNotTripBreaker(t *testing.T) {
	e := setup(t, gcsim.Options{}, gocardless.WithBreaker(t.Name(), breaker.Options{Failures: 2, OpenFor: time.Hour}))
	ctx := context.Background()
	_, _, md := e.customer(t, 1)
	for i := range 5 {
		if _, _, err := e.gc.CreatePayment(ctx, fmt.Sprint("bad-", i), paymentParams(md, -5)); !gocardless.IsValidation(err) {
			t.Fatalf("bad payment %d: %v", i, err)
		}
		if _, err := e.gc.GetPayment(ctx, "PM00000MISSING"); !gocardless.IsNotFound(err) {
			t.Fatalf("missing payment %d: %v", i, err)
		}
	}
	if n := e.calls.status(http.StatusUnprocessableEntity) + e.calls.status(http.StatusNotFound); n != 10 {
		t.Errorf("%d 4xx answers for 10 calls: 4xx must not be retried", n)
	}
	if s, _ := breaker.State("gocardless/" + t.Name()); s != gobreaker.StateClosed {
		t.Fatalf("breaker %s after 4xx answers, want closed", s)
	}
	if _, _, err := e.gc.CreatePayment(ctx, "good", paymentParams(md, 500)); err != nil {
		t.Fatal(err)
	}
}

func TestNetworkErrors(t *testing.T) {
	// A port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	calls := newCounter()
	gc, err := gocardless.New("http://"+addr, secrets.NewValue(token),
		gocardless.WithTransport(calls),
		gocardless.WithBackoff(retry.Backoff{Base: time.Millisecond, Max: 2 * time.Millisecond, Attempts: 3}),
		gocardless.WithBreaker(t.Name(), breaker.Options{Failures: 2, OpenFor: time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 2 {
		_, err := gc.GetPayment(ctx, "PM1")
		var ae *gocardless.APIError
		if err == nil || errors.As(err, &ae) || !gocardless.Temporary(err) {
			t.Fatalf("call %d to a dead port: %v, want a temporary network error", i, err)
		}
	}
	if n := calls.requests(); n != 6 {
		t.Errorf("%d requests for 2 calls of 3 attempts", n)
	}
	if _, err := gc.GetPayment(ctx, "PM1"); !errors.Is(err, gocardless.ErrUnavailable) {
		t.Errorf("after 2 failed calls: %v, want ErrUnavailable", err)
	}
}

func TestDeadlines(t *testing.T) {
	e := setup(t, gcsim.Options{})
	_, _, md := e.customer(t, 1)

	t.Run("wait beyond deadline fails at once", func(t *testing.T) {
		// The 429 says come back in 30s; the caller has 200ms.
		if err := e.sim.SetFaults(gcsim.Faults{RateLimitNext: 1, RateLimitRetryAfter: 30 * time.Second}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		sent := e.calls.requests()
		_, _, err := e.gc.CreatePayment(ctx, "deadline", paymentParams(md, 1_000))
		if !errors.Is(err, context.DeadlineExceeded) || !gocardless.Temporary(err) {
			t.Fatalf("got %v, want the deadline", err)
		}
		var ae *gocardless.APIError
		if !errors.As(err, &ae) || ae.Code != http.StatusTooManyRequests {
			t.Errorf("error %v does not carry the 429 it was waiting out", err)
		}
		if n := e.calls.requests() - sent; n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
		if ctx.Err() != nil {
			t.Error("the call waited for the deadline instead of failing at once")
		}
	})

	t.Run("slow answer", func(t *testing.T) {
		if err := e.sim.SetFaults(gcsim.Faults{Latency: 2 * time.Second}); err != nil {
			t.Fatal(err)
		}
		defer e.sim.SetFaults(gcsim.Faults{})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := e.gc.GetMandate(ctx, md)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want the deadline", err)
		}
	})

	t.Run("http client timeout", func(t *testing.T) {
		// A GoCardless that hangs: the HTTP client's timeout is a network
		// failure, retried and counted by the breaker, unlike the
		// caller's own deadline.
		if err := e.sim.SetFaults(gcsim.Faults{Latency: 2 * time.Second}); err != nil {
			t.Fatal(err)
		}
		defer e.sim.SetFaults(gcsim.Faults{})
		calls := newCounter()
		gc, err := gocardless.New(e.sim.URL, secrets.NewValue(token),
			gocardless.WithHTTPClient(&http.Client{Timeout: 50 * time.Millisecond, Transport: calls}),
			gocardless.WithBackoff(retry.Backoff{Base: time.Millisecond, Max: time.Millisecond, Attempts: 2}),
			gocardless.WithBreaker(t.Name(), breaker.Options{Failures: 1, OpenFor: time.Hour}))
		if err != nil {
			t.Fatal(err)
		}
		_, err = gc.GetMandate(context.Background(), md)
		if err == nil || !gocardless.Temporary(err) || calls.requests() != 2 {
			t.Fatalf("hanging GoCardless: %v after %d requests, want a temporary error after 2", err, calls.requests())
		}
		if _, err := gc.GetMandate(context.Background(), md); !errors.Is(err, gocardless.ErrUnavailable) {
			t.Errorf("after a call that timed out twice: %v, want the breaker open", err)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := e.gc.GetMandate(ctx, md)
		if !errors.Is(err, context.Canceled) || gocardless.Temporary(err) {
			t.Fatalf("got %v, want context.Canceled, not temporary", err)
		}
	})
}

func TestPacingStaysUnderTheLimit(t *testing.T) {
	// 40 requests per second; 120 calls from 4 workers need three windows.
	const limit, calls = 40, 120
	e := setup(t, gcsim.Options{RateLimit: limit, RateWindow: time.Second})
	ctx := context.Background()
	_, _, md := e.customer(t, 1)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 4 {
		wg.Go(func() {
			for range work {
				if _, err := e.gc.GetMandate(ctx, md); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for i := range calls {
		work <- i
	}
	close(work)
	wg.Wait()
	if n := e.calls.status(http.StatusTooManyRequests); n != 0 {
		t.Errorf("%d requests hit the rate limit; pacing should avoid every one", n)
	}
	if n := e.calls.status(http.StatusOK); n != calls {
		t.Errorf("%d successful answers, want %d", n, calls)
	}
}

func TestWithoutPacingTheLimitIsHit(t *testing.T) {
	// The control for the test above: a load unpaced meets 429s (and
	// still completes, by waiting them out).
	const limit, calls = 10, 20
	e := setup(t, gcsim.Options{RateLimit: limit, RateWindow: time.Second}, gocardless.WithPacing(false))
	ctx := context.Background()
	_, _, md := e.customer(t, 1)
	var wg sync.WaitGroup
	for range calls {
		wg.Go(func() {
			if _, err := e.gc.GetMandate(ctx, md); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := e.calls.status(http.StatusTooManyRequests); n == 0 {
		t.Error("no 429 without pacing; the pacing test proves nothing")
	}
	if n := e.calls.status(http.StatusOK); n != calls {
		t.Errorf("%d successful answers, want %d: 429s are waited out", n, calls)
	}
}

// recordingClock runs on its own time, which moves only by the client's
// sleeps, and records them.
type recordingClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func (c *recordingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *recordingClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

func TestWaits(t *testing.T) {
	tests := []struct {
		name     string
		faults   gcsim.Faults
		min, max time.Duration // bounds of the time waited in all
	}{
		// Until the reset the 429 names (Retry-After 30, RateLimit-Reset
		// rounded up to a whole second), plus jitter.
		{"429 waits for the reset", gcsim.Faults{RateLimitNext: 1, RateLimitRetryAfter: 30 * time.Second},
			30 * time.Second, 31*time.Second + 31*time.Second/4 + 100*time.Millisecond},
		// Full jitter below the first backoff step (fastBackoff.Base).
		{"500 backs off", gcsim.Faults{ServerErrorNext: 1}, 0, fastBackoff.Base},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := &recordingClock{now: time.Now()}
			e := setup(t, gcsim.Options{}, gocardless.WithClock(clock))
			_, _, md := e.customer(t, 1)
			if err := e.sim.SetFaults(tc.faults); err != nil {
				t.Fatal(err)
			}
			if _, _, err := e.gc.CreatePayment(context.Background(), "waits", paymentParams(md, 1_000)); err != nil {
				t.Fatal(err)
			}
			var waited time.Duration
			for _, d := range clock.sleeps {
				waited += d
			}
			if len(clock.sleeps) == 0 || waited < tc.min || waited > tc.max {
				t.Errorf("waits %v, want in all [%v, %v]", clock.sleeps, tc.min, tc.max)
			}
			if len(e.sim.Payments()) != 1 {
				t.Errorf("%d payments after the retry", len(e.sim.Payments()))
			}
		})
	}
}

func TestRateLimitRetriesAreBounded(t *testing.T) {
	clock := &recordingClock{now: time.Now()}
	e := setup(t, gcsim.Options{}, gocardless.WithClock(clock), gocardless.WithRateLimitRetries(2))
	_, _, md := e.customer(t, 1)
	if err := e.sim.SetFaults(gcsim.Faults{RateLimitNext: 5}); err != nil {
		t.Fatal(err)
	}
	_, _, err := e.gc.CreatePayment(context.Background(), "bounded", paymentParams(md, 1_000))
	var ae *gocardless.APIError
	if !errors.As(err, &ae) || ae.Code != http.StatusTooManyRequests || !gocardless.Temporary(err) {
		t.Fatalf("got %v, want the 429 after the retries ran out", err)
	}
	if n := e.calls.status(http.StatusTooManyRequests); n != 3 {
		t.Errorf("%d attempts met a 429, want 3 (the first and 2 retries)", n)
	}
	if len(e.sim.Payments()) != 0 {
		t.Error("a payment was created")
	}
}
