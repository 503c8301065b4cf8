package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ml-connector/ml-connector/platform/testsupport/await"
)

// recorder is a group's run function that records its batches, can be
// held at the gate, and fails any batch holding a poisoned item.
type recorder struct {
	gate     chan struct{}
	poisoned int

	mu       sync.Mutex
	batches  [][]int
	inFlight atomic.Int32
	maxSeen  atomic.Int32
}

func (r *recorder) run(_ context.Context, items []int) ([]string, error) {
	n := r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	for {
		m := r.maxSeen.Load()
		if n <= m || r.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	r.mu.Lock()
	r.batches = append(r.batches, slices.Clone(items))
	r.mu.Unlock()
	if r.gate != nil {
		<-r.gate
	}
	if r.poisoned != 0 && slices.Contains(items, r.poisoned) {
		return nil, fmt.Errorf("batch with %d refused", r.poisoned)
	}
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = fmt.Sprint("r", it)
	}
	return out, nil
}

func (r *recorder) sizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []int
	for _, b := range r.batches {
		s = append(s, len(b))
	}
	return s
}

func queued[T, R any](g *group[T, R]) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}

func TestGroupBatchesCallsQueuedBehindARunningBatch(t *testing.T) {
	rec := &recorder{gate: make(chan struct{})}
	g := &group[int, string]{name: "test", max: 1, size: 4, run: rec.run}

	results := make([]string, 7)
	errs := make([]error, 7)
	var wg sync.WaitGroup
	call := func(i int) {
		wg.Go(func() { results[i], errs[i] = g.do(context.Background(), i) })
	}
	call(0)
	await.Until(t, 5*time.Second, "the first batch to start", func() bool { return len(rec.sizes()) == 1 })
	for i := 1; i < 7; i++ {
		call(i)
	}
	await.Until(t, 5*time.Second, "six calls to queue", func() bool { return queued(g) == 6 })
	close(rec.gate)
	wg.Wait()

	if got, want := rec.sizes(), []int{1, 4, 2}; !slices.Equal(got, want) {
		t.Errorf("batch sizes = %v, want %v (one alone, then the queue in batches of at most 4)", got, want)
	}
	for i := range results {
		if errs[i] != nil || results[i] != fmt.Sprint("r", i) {
			t.Errorf("call %d = %q, %v; want its own result", i, results[i], errs[i])
		}
	}
	if rec.maxSeen.Load() != 1 {
		t.Errorf("%d batches ran at once, want at most 1", rec.maxSeen.Load())
	}
}

func TestGroupRunsAtMostMaxBatchesAtOnce(t *testing.T) {
	rec := &recorder{}
	slow := func(ctx context.Context, items []int) ([]string, error) {
		time.Sleep(time.Millisecond)
		return rec.run(ctx, items)
	}
	g := &group[int, string]{name: "test", max: 2, size: 8, run: slow}
	var wg sync.WaitGroup
	var wrong atomic.Int32
	for i := range 200 {
		wg.Go(func() {
			if r, err := g.do(context.Background(), i); err != nil || r != fmt.Sprint("r", i) {
				wrong.Add(1)
			}
		})
	}
	wg.Wait()
	if wrong.Load() != 0 {
		t.Errorf("%d calls got another's result or an error", wrong.Load())
	}
	if m := rec.maxSeen.Load(); m > 2 {
		t.Errorf("%d batches ran at once, want at most 2", m)
	}
	total := 0
	for _, n := range rec.sizes() {
		total += n
	}
	if total != 200 {
		t.Errorf("batches held %d calls, want each of the 200 once", total)
	}
	// The last leader hands back its lane just after its callers return.
	await.Until(t, 5*time.Second, "the group to go idle", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.running == 0 && len(g.queue) == 0
	})
}

// A batch that fails is retried call by call, so only the call that
// cannot succeed sees an error.
func TestGroupFailedBatchRetriesEachCallAlone(t *testing.T) {
	rec := &recorder{gate: make(chan struct{}), poisoned: 13}
	g := &group[int, string]{name: "test", max: 1, size: 8, run: rec.run}

	got := map[int]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	call := func(i int) {
		wg.Go(func() {
			_, err := g.do(context.Background(), i)
			mu.Lock()
			got[i] = err
			mu.Unlock()
		})
	}
	call(0)
	await.Until(t, 5*time.Second, "the first batch to start", func() bool { return len(rec.sizes()) == 1 })
	for _, i := range []int{1, 13, 2} {
		call(i)
	}
	await.Until(t, 5*time.Second, "three calls to queue", func() bool { return queued(g) == 3 })
	close(rec.gate)
	wg.Wait()

	for i, err := range got {
		if (i == 13) != (err != nil) {
			t.Errorf("call %d: err = %v", i, err)
		}
	}
	if got, want := rec.sizes(), []int{1, 3, 1, 1, 1}; !slices.Equal(got, want) {
		t.Errorf("batch sizes = %v, want %v", got, want)
	}
}

// A shared batch is traced in the first caller's trace and linked both
// ways with the other callers' spans, so every invoice's trace leads to
// the transaction that wrote it.
func TestGroupBatchIsLinkedToEveryCallersTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	gate := &recorder{gate: make(chan struct{})}
	g := &group[int, string]{name: "test", max: 1, size: 8, run: gate.run}
	var wg sync.WaitGroup
	callers := make([]trace.Span, 4)
	for i := range callers {
		ctx, span := tp.Tracer("test").Start(context.Background(), fmt.Sprint("caller", i))
		callers[i] = span
		wg.Go(func() {
			defer span.End()
			g.do(ctx, i)
		})
		if i == 0 {
			await.Until(t, 5*time.Second, "the first batch to start", func() bool { return len(gate.sizes()) == 1 })
		}
	}
	await.Until(t, 5*time.Second, "three calls to queue", func() bool { return queued(g) == 3 })
	close(gate.gate)
	wg.Wait()

	var batch sdktrace.ReadOnlySpan
	ended := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		ended[s.SpanContext().SpanID()] = s
		if s.Name() == "ledger.test" {
			batch = s
		}
	}
	if batch == nil {
		t.Fatal("no span for the shared batch (a batch of one needs none)")
	}
	first := callers[slices.IndexFunc(callers, func(s trace.Span) bool {
		return s.SpanContext().SpanID() == batch.Parent().SpanID()
	})]
	linked := map[trace.SpanID]bool{}
	for _, l := range batch.Links() {
		linked[l.SpanContext.SpanID()] = true
	}
	for _, c := range callers[1:] {
		if c == first {
			continue
		}
		if !linked[c.SpanContext().SpanID()] {
			t.Errorf("batch span not linked to caller %s", ended[c.SpanContext().SpanID()].Name())
		}
		back := ended[c.SpanContext().SpanID()].Links()
		if len(back) != 1 || back[0].SpanContext.SpanID() != batch.SpanContext().SpanID() {
			t.Errorf("caller %s not linked to the batch span: %v", ended[c.SpanContext().SpanID()].Name(), back)
		}
	}
}

// A shared batch ends by its callers' earliest deadline: the caller out of
// time gets its error, the others are served alone.
func TestGroupBatchEndsByEarliestDeadline(t *testing.T) {
	gate := make(chan struct{})
	var batchDeadline time.Time
	run := func(ctx context.Context, items []int) ([]string, error) {
		if items[0] == 0 {
			<-gate
		}
		if len(items) > 1 {
			batchDeadline, _ = ctx.Deadline()
			<-ctx.Done() // a batch stuck behind a lock
			return nil, ctx.Err()
		}
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			return nil, context.DeadlineExceeded
		}
		return []string{fmt.Sprint("r", items[0])}, nil
	}
	g := &group[int, string]{name: "test", max: 1, size: 8, run: run}

	errs := make([]error, 4)
	var wg sync.WaitGroup
	wg.Go(func() { _, errs[0] = g.do(context.Background(), 0) })
	await.Until(t, 5*time.Second, "the first batch to start", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.running == 1 && len(g.queue) == 0
	})
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	for i := 1; i < 4; i++ {
		ctx := context.Background()
		if i == 1 {
			ctx = short
		}
		wg.Go(func() { _, errs[i] = g.do(ctx, i) })
	}
	await.Until(t, 5*time.Second, "three calls to queue", func() bool { return queued(g) == 3 })
	close(gate)
	wg.Wait()

	if d, _ := short.Deadline(); !batchDeadline.Equal(d) {
		t.Errorf("shared batch deadline %v, want the earliest caller's, %v", batchDeadline, d)
	}
	if !errors.Is(errs[1], context.DeadlineExceeded) {
		t.Errorf("caller out of time: err = %v, want its deadline", errs[1])
	}
	for _, i := range []int{0, 2, 3} {
		if errs[i] != nil {
			t.Errorf("caller %d: err = %v", i, errs[i])
		}
	}
}

// A panic in a batch fails that batch's calls, not the process: each is
// retried alone, so only the call that panics alone sees an error, and
// the lane is given back every time (with one lane, a lane lost to a
// panic would leave every later call queued forever).
func TestGroupPanicFailsOnlyItsCallAndFreesTheLane(t *testing.T) {
	gate := make(chan struct{})
	var gated atomic.Bool
	run := func(_ context.Context, items []int) ([]string, error) {
		if items[0] == 0 && gated.CompareAndSwap(false, true) {
			<-gate
		}
		if slices.Contains(items, 13) {
			panic("bad item")
		}
		out := make([]string, len(items))
		for i, it := range items {
			out[i] = fmt.Sprint("r", it)
		}
		return out, nil
	}
	g := &group[int, string]{name: "test", max: 1, size: 8, run: run}

	for round := range 3 {
		gated.Store(false)
		gate = make(chan struct{})
		errs := map[int]error{}
		results := map[int]string{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		call := func(i int) {
			wg.Go(func() {
				r, err := g.do(context.Background(), i)
				mu.Lock()
				results[i], errs[i] = r, err
				mu.Unlock()
			})
		}
		call(0)
		await.Until(t, 5*time.Second, "the first batch to start", func() bool { return gated.Load() })
		for _, i := range []int{1, 13, 2} {
			call(i)
		}
		await.Until(t, 5*time.Second, "three calls to queue", func() bool { return queued(g) == 3 })
		close(gate)
		wg.Wait()
		for i, err := range errs {
			if i == 13 {
				if !errors.Is(err, errPanicked) || results[i] != "" {
					t.Errorf("round %d: panicking call = %q, %v; want errPanicked", round, results[i], err)
				}
				continue
			}
			if err != nil || results[i] != fmt.Sprint("r", i) {
				t.Errorf("round %d: call %d = %q, %v; want its result", round, i, results[i], err)
			}
		}
	}
	await.Until(t, 5*time.Second, "the lane to be given back", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.running == 0
	})
	// Alone, too.
	if _, err := g.do(context.Background(), 13); !errors.Is(err, errPanicked) {
		t.Errorf("lone panicking call: err = %v", err)
	}
	if r, err := g.do(context.Background(), 7); err != nil || r != "r7" {
		t.Errorf("call after panics = %q, %v", r, err)
	}
}

// A caller stops waiting when its context ends: in a running batch (the
// batch goes on for the others) or still queued (then it never runs).
func TestGroupWaitsHonourTheContext(t *testing.T) {
	rec := &recorder{gate: make(chan struct{})}
	g := &group[int, string]{name: "test", max: 1, size: 8, run: rec.run}

	running, cancelRunning := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := g.do(running, 0); done <- err }()
	await.Until(t, 5*time.Second, "the first batch to start", func() bool { return len(rec.sizes()) == 1 })

	queuedCtx, cancelQueued := context.WithCancel(context.Background())
	queuedDone := make(chan error, 1)
	go func() { _, err := g.do(queuedCtx, 1); queuedDone <- err }()
	var wg sync.WaitGroup
	var other string
	var otherErr error
	wg.Go(func() { other, otherErr = g.do(context.Background(), 2) })
	await.Until(t, 5*time.Second, "two calls to queue", func() bool { return queued(g) == 2 })

	cancelQueued()
	if err := <-queuedDone; !errors.Is(err, context.Canceled) {
		t.Errorf("queued caller: err = %v, want context.Canceled", err)
	}
	cancelRunning()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("caller in a running batch: err = %v, want context.Canceled", err)
	}
	close(rec.gate)
	wg.Wait()
	if otherErr != nil || other != "r2" {
		t.Errorf("remaining caller = %q, %v", other, otherErr)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, b := range rec.batches {
		if slices.Contains(b, 1) {
			t.Errorf("the call cancelled in the queue ran in batch %v", b)
		}
	}
	if _, err := g.do(running, 3); !errors.Is(err, context.Canceled) {
		t.Errorf("call with an ended context: err = %v", err)
	}
}

// A run that answers with the wrong number of results fails its calls
// with an error rather than handing out zero results.
func TestGroupChecksTheResultCount(t *testing.T) {
	run := func(_ context.Context, items []int) ([]string, error) {
		return make([]string, len(items)-1), nil
	}
	g := &group[int, string]{name: "test", max: 1, size: 8, run: run}
	if r, err := g.do(context.Background(), 1); err == nil || r != "" {
		t.Errorf("call = %q, %v; want an error", r, err)
	}
}
