package ledger

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// group shares transactions between concurrent callers (group commit). A
// caller that finds fewer than max batches in flight runs the next batch
// itself, with the calls queued so far (up to size of them); the others
// wait for their results. Alone, a call is a batch of one and waits for
// nothing; under load, one transaction's round trips and one commit serve
// many calls, which is what lets a 2-core machine collect more than a
// thousand invoices a second.
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

func (g *group[T, R]) do(ctx context.Context, item T) (R, error) {
	c := &groupCall[T, R]{ctx: ctx, item: item, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	lead := g.running < g.max
	if lead {
		g.running++
	}
	g.mu.Unlock()
	if lead {
		g.lead()
	}
	<-c.done
	return c.res, c.err
}

// lead runs one batch and hands what queued meanwhile to a new leader, so
// that the caller, whose call was in the batch, returns at once.
func (g *group[T, R]) lead() {
	g.mu.Lock()
	n := min(len(g.queue), g.size)
	if n == 0 {
		// Another leader took the calls queued meanwhile, ours with them.
		g.running--
		g.mu.Unlock()
		return
	}
	batch := g.queue[:n:n]
	g.queue = g.queue[n:]
	g.mu.Unlock()

	g.runBatch(batch)

	g.mu.Lock()
	more := len(g.queue) > 0
	if !more {
		g.running--
	}
	g.mu.Unlock()
	if more {
		go g.lead()
	}
}

func (g *group[T, R]) runBatch(calls []*groupCall[T, R]) {
	defer func() {
		for _, c := range calls {
			close(c.done)
		}
	}()
	if len(calls) == 1 {
		c := calls[0]
		c.res, c.err = one(g.run(c.ctx, []T{c.item}))
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

	res, err := g.run(ctx, items)
	if err == nil {
		for i, c := range calls {
			c.res = res[i]
		}
		return
	}
	// One call's failure must not fail the others, and a deadlock or
	// serialization failure between batches deserves another try: each
	// call runs again alone.
	span.RecordError(err)
	for _, c := range calls {
		c.res, c.err = one(g.run(c.ctx, []T{c.item}))
	}
}

func one[R any](res []R, err error) (R, error) {
	if err != nil {
		var zero R
		return zero, err
	}
	return res[0], nil
}
