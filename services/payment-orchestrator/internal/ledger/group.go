package ledger

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// group shares transactions between concurrent callers (group commit). A
// caller that finds fewer than max batches in flight starts a leader for a
// new lane; the leader runs the calls queued so far in batches of up to
// size, until the queue is empty, then gives the lane back. Alone, a call
// is a batch of one; under load, one transaction's round trips and one
// commit serve many calls, which is what lets a 2-core machine collect
// more than a thousand invoices a second.
//
// Whatever run does, the group keeps its promises: every caller gets its
// own result or an error (never a zero result with a nil error), a panic
// in run fails the calls of that batch instead of the process, the lane is
// given back, and a caller whose context ends stops waiting at once.
type group[T, R any] struct {
	name      string
	max, size int
	// run does a batch in one transaction. Each item carries its own
	// context for what it records (trace ids); ctx is the batch's.
	run func(ctx context.Context, items []T) ([]R, error)

	mu      sync.Mutex
	queue   []*groupCall[T, R]
	running int
}

type groupCall[T, R any] struct {
	ctx  context.Context
	item T
	res  R
	err  error
	done chan struct{}
}

// batchTimeout bounds a shared batch whose callers set no deadline.
const batchTimeout = time.Minute

const tracerName = "github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"

// errPanicked marks a batch whose run panicked.
var errPanicked = errors.New("panicked")

func (g *group[T, R]) do(ctx context.Context, item T) (R, error) {
	var zero R
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	c := &groupCall[T, R]{ctx: ctx, item: item, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	lead := g.running < g.max
	if lead {
		g.running++
	}
	g.mu.Unlock()
	if lead {
		// The batch runs apart from the caller, so that the caller can stop
		// waiting when its context ends while the others' batch goes on.
		go g.lead()
	}
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		g.mu.Lock()
		if i := slices.Index(g.queue, c); i >= 0 {
			// Not taken into a batch yet: it never will be.
			g.queue = slices.Delete(g.queue, i, i+1)
		}
		g.mu.Unlock()
		// A batch that took the call may still commit it; the caller's
		// message is then redelivered and finds the committed row.
		return zero, fmt.Errorf("ledger %s: %w", g.name, ctx.Err())
	}
}

// lead runs batches of what is queued until nothing is, then gives the
// lane back.
func (g *group[T, R]) lead() {
	for {
		g.mu.Lock()
		n := min(len(g.queue), g.size)
		if n == 0 {
			g.running--
			g.mu.Unlock()
			return
		}
		batch := slices.Clone(g.queue[:n])
		g.queue = slices.Delete(g.queue, 0, n)
		g.mu.Unlock()
		g.runBatch(batch)
	}
}

// runBatch runs calls together and, if that fails, each alone; it sets
// every call's result or error and closes its done, whatever happens.
func (g *group[T, R]) runBatch(calls []*groupCall[T, R]) {
	defer func() {
		for _, c := range calls {
			close(c.done)
		}
	}()
	if len(calls) == 1 {
		c := calls[0]
		c.res, c.err = g.runOne(c)
		return
	}
	// The batch belongs to every caller's trace: it is a span of the first
	// caller's, linked both ways with the others'.
	links := make([]trace.Link, 0, len(calls)-1)
	items := make([]T, len(calls))
	for i, c := range calls {
		items[i] = c.item
		if i > 0 {
			links = append(links, trace.LinkFromContext(c.ctx))
		}
	}
	// No one caller's cancellation may cancel the others' work, but the
	// batch ends by the earliest deadline among them: past it, that
	// caller's message is redelivered anyway, and the others try alone.
	deadline := time.Now().Add(batchTimeout)
	for _, c := range calls {
		if d, ok := c.ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
	}
	ctx, cancel := context.WithDeadline(context.WithoutCancel(calls[0].ctx), deadline)
	defer cancel()
	ctx, span := otel.Tracer(tracerName).Start(ctx, "ledger."+g.name, trace.WithLinks(links...),
		trace.WithAttributes(attribute.Int("mlc.batch_size", len(calls))))
	defer span.End()
	for _, c := range calls[1:] {
		trace.SpanFromContext(c.ctx).AddLink(trace.LinkFromContext(ctx))
	}

	res, err := g.safeRun(ctx, items)
	if err == nil {
		for i, c := range calls {
			c.res = res[i]
		}
		return
	}
	// One call's failure (or panic) must not fail the others, and a
	// deadlock or serialization failure between batches deserves another
	// try: each call runs again alone.
	span.RecordError(err)
	span.SetStatus(codes.Error, "batch failed; calls retried alone")
	for _, c := range calls {
		if c.ctx.Err() != nil {
			c.err = c.ctx.Err() // gone: nobody waits for its result
			continue
		}
		c.res, c.err = g.runOne(c)
	}
}

func (g *group[T, R]) runOne(c *groupCall[T, R]) (R, error) {
	res, err := g.safeRun(c.ctx, []T{c.item})
	if err != nil {
		var zero R
		return zero, err
	}
	return res[0], nil
}

// safeRun is run with its panics turned into errors and its answer
// checked: one result per item, or an error.
func (g *group[T, R]) safeRun(ctx context.Context, items []T) (res []R, err error) {
	defer func() {
		if p := recover(); p != nil {
			trace.SpanFromContext(ctx).AddEvent("panic", trace.WithAttributes(
				attribute.String("panic", fmt.Sprint(p)), attribute.String("stack", string(debug.Stack()))))
			res, err = nil, fmt.Errorf("ledger %s of %d: %w: %v", g.name, len(items), errPanicked, p)
		}
	}()
	res, err = g.run(ctx, items)
	if err == nil && len(res) != len(items) {
		err = fmt.Errorf("ledger %s: %d results for %d calls", g.name, len(res), len(items))
	}
	return res, err
}

// BatchConnections is the most pooled connections the ledger's shared
// batches hold at once: batchesInFlight lanes for each of its three kinds.
const BatchConnections = 3 * batchesInFlight

// MinPoolSize is the smallest pool the orchestrator runs on: every batch
// lane busy, and still one connection each for the ERP and GoCardless
// consumers' own transactions, the dead-letter consumer and the events
// catch-up.
const MinPoolSize = BatchConnections + 4

// CheckPool checks a pool of maxConns connections against the
// orchestrator's concurrency. No handler holds a connection across an
// outside call or while it waits for another connection (see the
// orchestrator's package doc), so workers beyond the pool only queue for
// a connection for the few milliseconds of a transaction, and never
// deadlock; what the pool must cover is the batch lanes and one
// connection per consumer.
func CheckPool(maxConns, erpWorkers, gcWorkers int) error {
	if maxConns < MinPoolSize {
		return fmt.Errorf("DATABASE_URL's pool_max_conns=%d is too small: the ledger's batch lanes hold up to %d connections and the "+
			"ERP_WORKERS (%d) and GC_WORKERS (%d) consumers, the dead-letter consumer and the events catch-up need one more each; "+
			"set pool_max_conns to at least %d", maxConns, BatchConnections, erpWorkers, gcWorkers, MinPoolSize)
	}
	return nil
}
