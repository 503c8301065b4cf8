package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// spanSink is an OTLP/gRPC trace receiver that keeps every span the
// services export, as an OpenTelemetry Collector would receive them.
type spanSink struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*span
}

// span is an exported span with what the test reads of it.
type span struct {
	service                 string // the service.name resource attribute
	traceID, spanID, parent string // hex; parent is "" for a root
	name                    string
	kind                    tracepb.Span_SpanKind
	attrs                   map[string]string
	links                   []spanLink
}

type spanLink struct {
	traceID, spanID string
	attrs           map[string]string
}

func (s *span) String() string {
	return fmt.Sprintf("%s %q (%s, span %s)", s.service, s.name, strings.TrimPrefix(s.kind.String(), "SPAN_KIND_"), s.spanID)
}

func (k *spanSink) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := attrMap(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s := &span{
					service: service, traceID: hex.EncodeToString(sp.GetTraceId()), spanID: hex.EncodeToString(sp.GetSpanId()),
					parent: hex.EncodeToString(sp.GetParentSpanId()), name: sp.GetName(), kind: sp.GetKind(),
					attrs: attrMap(sp.GetAttributes()),
				}
				for _, l := range sp.GetLinks() {
					s.links = append(s.links, spanLink{traceID: hex.EncodeToString(l.GetTraceId()), spanID: hex.EncodeToString(l.GetSpanId()),
						attrs: attrMap(l.GetAttributes())})
				}
				k.spans = append(k.spans, s)
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func attrMap(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = fmt.Sprint(v.IntValue)
		default:
			m[kv.GetKey()] = fmt.Sprint(kv.GetValue())
		}
	}
	return m
}

// startSpanSink serves a span sink on a loopback port until the test ends
// and returns it with its endpoint URL.
func startSpanSink(t *testing.T) (*spanSink, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink := &spanSink{}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, sink)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return sink, "http://" + ln.Addr().String()
}

// traces indexes captured spans by trace and span id.
type traces struct {
	all  []*span
	byID map[string]*span // traceID/spanID
}

func indexSpans(spans []*span) traces {
	tr := traces{all: spans, byID: make(map[string]*span, len(spans))}
	for _, s := range spans {
		tr.byID[s.traceID+"/"+s.spanID] = s
	}
	return tr
}

func (tr traces) parentOf(s *span) *span {
	if s.parent == "" {
		return nil
	}
	return tr.byID[s.traceID+"/"+s.parent]
}

// chain is s and its ancestors, nearest first, as far as they were
// captured; broken reports a parent id that names no captured span.
func (tr traces) chain(s *span) (chain []*span, broken bool) {
	for ; s != nil; s = tr.parentOf(s) {
		chain = append(chain, s)
		if s.parent != "" && tr.parentOf(s) == nil {
			return chain, true
		}
	}
	return chain, false
}

// describe renders s's chain for failure messages.
func (tr traces) describe(s *span) string {
	chain, broken := tr.chain(s)
	parts := make([]string, len(chain))
	for i, c := range chain {
		parts[i] = c.String()
	}
	out := strings.Join(parts, "\n      ← ")
	if broken {
		out += "\n      ← (parent " + chain[len(chain)-1].parent + " not captured)"
	}
	return "trace " + s.traceID + ":\n      " + out
}

// ancestor is the nearest ancestor of s matching match, or nil.
func (tr traces) ancestor(s *span, match func(*span) bool) *span {
	for p := tr.parentOf(s); p != nil; p = tr.parentOf(p) {
		if match(p) {
			return p
		}
	}
	return nil
}

// under is every span matching match that has root among its ancestors.
func (tr traces) under(root *span, match func(*span) bool) []*span {
	var found []*span
	for _, s := range tr.all {
		if s.traceID == root.traceID && match(s) && tr.ancestor(s, func(p *span) bool { return p == root }) != nil {
			found = append(found, s)
		}
	}
	return found
}

func (tr traces) find(match func(*span) bool) []*span {
	var found []*span
	for _, s := range tr.all {
		if match(s) {
			found = append(found, s)
		}
	}
	return found
}

// spanMatch matches spans by service, kind and name ("" for any name).
func spanMatch(service string, kind tracepb.Span_SpanKind, name string) func(*span) bool {
	return func(s *span) bool {
		return s.service == service && s.kind == kind && (name == "" || s.name == name)
	}
}

func describeAll(tr traces, spans []*span) string {
	if len(spans) == 0 {
		return "    (none)"
	}
	var b strings.Builder
	for i, s := range spans {
		if i == 5 {
			fmt.Fprintf(&b, "    ... and %d more\n", len(spans)-5)
			break
		}
		fmt.Fprintf(&b, "    %s\n", tr.describe(s))
	}
	return b.String()
}

// TestTraceTellsTheCollectionStory runs a small book with every service
// exporting its spans over OTLP to a receiver in the test, then follows
// one IFS invoice through them: the poller's publish, the orchestrator's
// consume and its GoCardless call in one trace; GoCardless's webhook, the
// orchestrator's consume, its gRPC call to erp-poster and erp-poster's
// call to IFS in another; and a span link from the second to the first.
func TestTraceTellsTheCollectionStory(t *testing.T) {
	sink, endpoint := startSpanSink(t)

	// What the settled hook learns while the stack still runs.
	var (
		inv                 invoice
		ifsURL, traceParent string
	)
	runBook(t, options{
		invoices: 10,
		// Mandates from the ERP's bank details: every invoice is collected
		// by the consumer that received it (at worst on a redelivery), the
		// hop this story follows. With billing requests, an invoice that
		// arrives before its payer authorised is parked and collected later
		// by the sweep, outside the poller's trace.
		mandateSetup: "direct",
		extraEnv: []string{
			"OTEL_EXPORTER_OTLP_ENDPOINT=" + endpoint, "OTEL_EXPORTER_OTLP_INSECURE=true",
			"OTEL_METRICS_EXPORTER=none",
			// Export often and drop nothing, so the story has no gaps.
			"OTEL_BSP_SCHEDULE_DELAY=200", "OTEL_BSP_MAX_QUEUE_SIZE=100000",
			// The story told here is the webhook's; the /events catch-up
			// would race it to some events (and publish them in a trace
			// of its own), so it makes only its first pass, before any.
			"CATCHUP_INTERVAL=1h",
		},
		settled: func(ctx context.Context, s *simulators) error {
			for _, i := range s.book.invoices {
				if i.erp == "ifs" && i.want == wantCollected {
					inv = i
					break
				}
			}
			if inv.id == "" {
				return fmt.Errorf("the book has no collected IFS invoice")
			}
			if err := s.db.QueryRow(ctx, `SELECT settings->>'base_url' FROM connections WHERE name = $1`, ifsConnection).Scan(&ifsURL); err != nil {
				return err
			}
			return s.db.QueryRow(ctx, `SELECT coalesce(trace_parent, '') FROM collections WHERE company = $1 AND invoice_id = $2`,
				inv.company, inv.id).Scan(&traceParent)
		},
	})
	// The services flushed their spans when they stopped.
	sink.mu.Lock()
	tr := indexSpans(sink.spans)
	sink.mu.Unlock()
	t.Logf("%d spans captured; following IFS invoice %s/%s", len(tr.all), inv.company, inv.id)
	ofInvoice := func(s *span) bool {
		return s.attrs["mlc.company"] == inv.company && s.attrs["mlc.invoice_id"] == inv.id
	}

	// (a) The poller's trace: publish → consume → GoCardless call.
	invoiceSubject := "process mlc.erp.ifs." + inv.company + ".invoice"
	consumed := tr.find(func(s *span) bool {
		return spanMatch("payment-orchestrator", tracepb.Span_SPAN_KIND_CONSUMER, invoiceSubject)(s) && ofInvoice(s)
	})
	if len(consumed) == 0 {
		t.Fatalf("hop missing: no payment-orchestrator %q span with mlc.invoice_id %s (of %d spans)", invoiceSubject, inv.id, len(tr.all))
	}
	var created, createCall *span
	for _, c := range consumed {
		if calls := tr.under(c, spanMatch("payment-orchestrator", tracepb.Span_SPAN_KIND_CLIENT, "gocardless POST /payments")); len(calls) > 0 {
			created, createCall = c, calls[0]
			break
		}
	}
	if created == nil {
		t.Fatalf("hop missing: orchestrator consume → GoCardless: no \"gocardless POST /payments\" span under the %d spans consuming the invoice:\n%s"+
			"  GoCardless POST /payments spans seen:\n%s", len(consumed), describeAll(tr, consumed),
			describeAll(tr, tr.find(spanMatch("payment-orchestrator", tracepb.Span_SPAN_KIND_CLIENT, "gocardless POST /payments"))))
	}
	if chain, broken := tr.chain(createCall); broken {
		t.Errorf("poller trace broken: a parent is missing:\n  %s (%d spans)", tr.describe(createCall), len(chain))
	}
	published := tr.parentOf(created)
	if published == nil || !spanMatch("ifs-poller", tracepb.Span_SPAN_KIND_PRODUCER, "publish batch")(published) {
		t.Fatalf("hop missing: ifs-poller publish → orchestrator consume: the consuming span's parent is not ifs-poller's \"publish batch\":\n  %s",
			tr.describe(createCall))
	}
	if want := "00-" + created.traceID + "-" + created.spanID + "-01"; traceParent != want {
		t.Errorf("collection's trace_parent = %q, want the span that created it: %q", traceParent, want)
	}

	// (b) The webhook's trace: webhook → publish → consume → gRPC →
	// erp-poster → IFS, for the event that told IFS of the payment.
	events := tr.find(func(s *span) bool {
		return s.service == "payment-orchestrator" && s.kind == tracepb.Span_SPAN_KIND_CONSUMER &&
			strings.HasPrefix(s.name, "process mlc.gc.payments.") && ofInvoice(s)
	})
	if len(events) == 0 {
		t.Fatalf("hop missing: no payment-orchestrator span consuming a GoCardless payment event with mlc.invoice_id %s", inv.id)
	}
	var fromWebhook []*span
	for _, e := range events {
		pub := tr.parentOf(e)
		if pub == nil || !spanMatch("gc-webhook", tracepb.Span_SPAN_KIND_PRODUCER, "publish batch")(pub) {
			continue
		}
		if req := tr.parentOf(pub); req != nil && spanMatch("gc-webhook", tracepb.Span_SPAN_KIND_SERVER, "")(req) {
			fromWebhook = append(fromWebhook, e)
		}
	}
	if len(fromWebhook) == 0 {
		t.Fatalf("hop missing: gc-webhook request → publish batch → orchestrator consume, for every payment event of the invoice:\n%s",
			describeAll(tr, events))
	}
	var calls []*span
	for _, e := range fromWebhook {
		calls = append(calls, tr.under(e, spanMatch("payment-orchestrator", tracepb.Span_SPAN_KIND_CLIENT, "mlc.v1.ErpPoster/PostPaymentOutcome"))...)
	}
	if len(calls) == 0 {
		t.Fatalf("hop missing: orchestrator consume → erp-poster gRPC client span, under the webhook's payment events:\n%s", describeAll(tr, fromWebhook))
	}
	// The write itself: a POST to IFS's Mixed Payment projection (the
	// customer payment matched to the invoice, or its approval).
	invoiceEntity := "MixedPaymentHandling.svc/"
	toIFS := func(s *span) bool {
		return spanMatch("erp-poster", tracepb.Span_SPAN_KIND_CLIENT, "")(s) && s.attrs["http.request.method"] == "POST" &&
			strings.HasPrefix(s.attrs["url.full"], ifsURL+"/") && strings.Contains(s.attrs["url.full"], invoiceEntity)
	}
	var served, ifsCall *span
	for _, c := range calls {
		for _, srv := range tr.find(spanMatch("erp-poster", tracepb.Span_SPAN_KIND_SERVER, "mlc.v1.ErpPoster/PostPaymentOutcome")) {
			if srv.traceID != c.traceID || srv.parent != c.spanID {
				continue
			}
			served = srv
			if posts := tr.under(srv, toIFS); len(posts) > 0 {
				ifsCall = posts[0]
				break
			}
		}
		if ifsCall != nil {
			break
		}
	}
	switch {
	case served == nil:
		t.Fatalf("hop missing: orchestrator gRPC client → erp-poster server: no erp-poster server span is the child of\n%s", describeAll(tr, calls))
	case ifsCall == nil:
		t.Fatalf("hop missing: erp-poster → IFS: no erp-poster HTTP client span POSTing to %s…%s under\n%s",
			ifsURL, invoiceEntity, describeAll(tr, calls))
	}
	if _, broken := tr.chain(ifsCall); broken {
		t.Errorf("webhook trace broken: a parent is missing:\n  %s", tr.describe(ifsCall))
	}
	if ifsCall.traceID == created.traceID {
		t.Errorf("the webhook's event was applied in the poller's trace %s; want a trace of its own", created.traceID)
	}
	t.Logf("poller trace:\n  %s", tr.describe(createCall))
	t.Logf("webhook trace:\n  %s", tr.describe(ifsCall))

	// (c) Every span applying a payment event of the invoice links back to
	// the span that created its collection.
	for _, e := range events {
		linked := false
		for _, l := range e.links {
			if l.traceID == created.traceID && l.spanID == created.spanID && l.attrs["mlc.link"] == "collection created" {
				linked = true
			}
		}
		if !linked {
			t.Errorf("link missing: %s has links %+v, want one to %s in trace %s (mlc.link=collection created)",
				e, e.links, created, created.traceID)
		}
	}
}
