package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
)

// chaosFlag is --chaos[=SEED]: bare, it picks a seed and prints it, so a
// failing run can be replayed with --chaos=SEED.
type chaosFlag struct {
	on   bool
	seed uint64
}

func (f *chaosFlag) IsBoolFlag() bool { return true }

func (f *chaosFlag) String() string {
	if f == nil || !f.on {
		return ""
	}
	return strconv.FormatUint(f.seed, 10)
}

func (f *chaosFlag) Set(s string) error {
	switch s {
	case "false":
		f.on = false
	case "true":
		f.on, f.seed = true, rand.Uint64()%1_000_000
	default:
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fmt.Errorf("--chaos takes no value or a seed (a non-negative integer), got %q", s)
		}
		f.on, f.seed = true, seed
	}
	return nil
}

// A fault is one thing the chaos schedule breaks at a tick.
type fault struct {
	tick int
	what string
	do   func(c *chaosControls) error
}

// chaosSchedule is every fault a run under --chaos=seed suffers, over the
// first window ticks; after window the faults stop so the book can settle
// (GoCardless retries and the /events catch-up deliver what was dropped).
//
// What breaks: every service SIGKILLed (twice each) at random times and
// restarted by its supervisor; the embedded NATS restarted twice; the
// demo's Postgres database made unreachable twice (see postgresOutage);
// GoCardless answering 5xx (after committing: the response is lost, not
// the request) and 429 bursts; webhooks dropped, duplicated and reordered
// throughout; IFS writes losing ETag races (412); JD Edwards AIS restarts
// (every session token gone).
func chaosSchedule(seed uint64, window int) []fault {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	at := func() int { return 2 + r.IntN(max(1, window-2)) }
	// base is on for the whole window; a burst is base plus the burst.
	base := gcsim.Faults{ServerErrorRate: 0.03, ServerErrorAfterCommit: true,
		Webhook: gcsim.WebhookFaults{DuplicateRate: 0.3, DropRate: 0.2, ReorderRate: 0.3}}
	faults := []fault{{tick: 1, what: "GoCardless webhooks dropped 20%, duplicated 30%, reordered 30%; API 5xx 3% after commit", do: func(c *chaosControls) error {
		return c.sims.gc.SetFaults(base)
	}}}
	for _, name := range services {
		for range 2 {
			faults = append(faults, fault{tick: at(), what: "SIGKILL " + name, do: func(c *chaosControls) error { return c.kill(name) }})
		}
	}
	for range 2 {
		faults = append(faults,
			fault{tick: at(), what: "NATS restart", do: func(c *chaosControls) error { return c.nats.restart() }},
			fault{tick: at(), what: "Postgres outage (3 s)", do: func(c *chaosControls) error { return c.postgres.start(3 * time.Second) }},
		)
	}
	for range 3 {
		n := 5 + r.IntN(20)
		faults = append(faults,
			fault{tick: at(), what: fmt.Sprintf("GoCardless 5xx burst (%d requests)", n), do: func(c *chaosControls) error {
				f := base
				f.ServerErrorNext = n
				return c.sims.gc.SetFaults(f)
			}},
			fault{tick: at(), what: fmt.Sprintf("GoCardless 429 burst (%d requests)", n), do: func(c *chaosControls) error {
				f := base
				f.RateLimitNext = n
				return c.sims.gc.SetFaults(f)
			}},
			fault{tick: at(), what: "IFS ETag races (3 writes)", do: func(c *chaosControls) error { c.sims.ifs.RaceNextWrites(3); return nil }},
			fault{tick: at(), what: "JD Edwards AIS restart", do: func(c *chaosControls) error { c.sims.jde.Restart(); return nil }},
		)
	}
	faults = append(faults, fault{tick: window, what: "faults end; the book settles", do: func(c *chaosControls) error {
		return c.sims.gc.SetFaults(gcsim.Faults{})
	}})
	sort.SliceStable(faults, func(i, j int) bool { return faults[i].tick < faults[j].tick })
	return faults
}

// chaosFunc runs a schedule, announcing each fault.
func chaosFunc(faults []fault) func(tick int, c *chaosControls) error {
	next := 0
	return func(tick int, c *chaosControls) error {
		for ; next < len(faults) && faults[next].tick <= tick; next++ {
			f := faults[next]
			fmt.Fprintf(c.out, "chaos: %s\n", f.what)
			if err := f.do(c); err != nil {
				return fmt.Errorf("%s: %w", f.what, err)
			}
		}
		return nil
	}
}

// postgresOutage makes the demo's database unreachable for a while: new
// connections are refused (ALLOW_CONNECTIONS false) and every open one is
// terminated, which is what the services see of a Postgres restart. The
// server itself is shared with other users of the machine, so it is not
// restarted; only this run's database goes away and comes back.
type postgresOutage struct {
	adminURL string
	database string
	wg       sync.WaitGroup
	mu       sync.Mutex
	err      error
}

func (o *postgresOutage) start(down time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, o.adminURL)
	if err != nil {
		return err
	}
	ident := pgx.Identifier{o.database}.Sanitize()
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+ident+" ALLOW_CONNECTIONS false"); err != nil {
		conn.Close(ctx)
		return err
	}
	if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, o.database); err != nil {
		conn.Close(ctx)
		return err
	}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		defer conn.Close(context.Background())
		time.Sleep(down)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+ident+" ALLOW_CONNECTIONS true"); err != nil {
			o.mu.Lock()
			o.err = fmt.Errorf("end Postgres outage: %w", err)
			o.mu.Unlock()
		}
	}()
	return nil
}

// wait lets every outage end, so the database is left open to mlcctl.
func (o *postgresOutage) wait() error {
	o.wg.Wait()
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}
