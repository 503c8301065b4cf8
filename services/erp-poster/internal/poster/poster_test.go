package poster_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/connectors/ifscloud/ifssim"
	"github.com/ml-connector/ml-connector/connectors/jde/jdesim"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/testsupport"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/erp-poster/internal/poster"
)

// env is erp-poster over real gRPC, with an IFS tenant and a JDE system.
type env struct {
	ifs    *ifssim.Sim
	jde    *jdesim.Server
	client mlcv1.ErpPosterClient
	store  *connections.Store
	db     *pgxpool.Pool
	t      testing.TB
}

func start(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, ifs: ifssim.New(ifssim.Config{Budget: -1}), jde: jdesim.New(jdesim.Options{})}
	ifsSrv, jdeSrv := httptest.NewServer(e.ifs), httptest.NewServer(e.jde)
	t.Cleanup(ifsSrv.Close)
	t.Cleanup(jdeSrv.Close)
	if err := e.ifs.PutInvoices(ifssim.Invoice{Company: "10", InvoiceID: 7, InvoiceNo: "CI-7", CustomerID: "C10", Currency: "EUR",
		State: ifssim.StatePostedAuth, GrossAmount: "100.10", OpenAmount: "100.10", DueDate: "2026-04-01"}); err != nil {
		t.Fatal(err)
	}
	if err := e.ifs.PutCustomers(ifssim.Customer{CustomerID: "C10", Company: "10", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	e.jde.PutCustomerMaster(jdesim.CustomerMaster{AN8: 4242, CO: "00001", TRAR: "N30", RYIN: "D"})
	e.jde.AddInvoices(jdesim.Invoice{DOC: 1001, DCT: "RI", KCO: "00001", SFX: "001", AN8: 4242, CO: "00001",
		AG: 12550, AAP: 12550, CRCD: "USD", MCU: "M30", PST: "A"},
		jdesim.Invoice{DOC: 1002, DCT: "RI", KCO: "00001", SFX: "001", AN8: 4242, CO: "00001",
			AG: 5000, AAP: 5000, CRCD: "USD", MCU: "M99", PST: "A"})

	db := testsupport.Pool(t)
	e.db = db
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keys, _ := secrets.NewKeyring(key)
	e.store = connections.NewStore(db, keys)
	for _, n := range []connections.New{
		{Name: "ifs-acme", Kind: connections.KindIFS, Actor: "test",
			Settings: map[string]any{"base_url": ifsSrv.URL, "client_id": "mlc", "company_codes": []any{"10"}, "requests_per_minute": float64(100000)},
			Secrets:  map[string]secrets.Value{"client_secret": secrets.NewValue("secret")}},
		{Name: "jde-corp", Kind: connections.KindJDE, Actor: "test",
			Settings: map[string]any{"base_url": jdeSrv.URL, "username": "JDE", "company_codes": []any{"00001"},
				"gl_accounts": map[string]any{"M30": "M30.1110.GC"}},
			Secrets: map[string]secrets.Value{"password": secrets.NewValue("JDE")}},
	} {
		if _, err := e.store.Add(context.Background(), n); err != nil {
			t.Fatal(err)
		}
	}
	writers := poster.NewWriters(e.store, time.Minute)
	t.Cleanup(writers.Close)
	srv := grpc.NewServer()
	mlcv1.RegisterErpPosterServer(srv, poster.New(db, writers, slog.New(slog.NewTextHandler(io.Discard, nil))))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- poster.GRPCWorker(srv, health.NewServer(), ln).Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e.client = mlcv1.NewErpPosterClient(conn)
	return e
}

var occurred = timestamppb.New(time.Date(2026, 4, 3, 9, 0, 0, 0, time.UTC))

func ifsPayment(id string, kind mlcv1.PaymentOutcomeKind) *mlcv1.PostPaymentOutcomeRequest {
	return &mlcv1.PostPaymentOutcomeRequest{Outcome: &mlcv1.PaymentOutcome{
		SchemaVersion: 1, OutcomeId: id, Erp: &mlcv1.ErpRef{Erp: mlcv1.Erp_ERP_IFS, Connection: "ifs-acme", Company: "10"},
		Invoice: &mlcv1.InvoiceKey{InvoiceId: "7", InvoiceNo: "CI-7"}, Kind: kind, PaymentId: "PM1", AmountMinor: 10010,
		Currency: "EUR", OccurredAt: occurred, Cause: "insufficient_funds", ReasonCode: "MS03", CustomerId: "C10",
	}}
}

func jdePayment(id, doc string, kind mlcv1.PaymentOutcomeKind) *mlcv1.PostPaymentOutcomeRequest {
	return &mlcv1.PostPaymentOutcomeRequest{Outcome: &mlcv1.PaymentOutcome{
		SchemaVersion: 1, OutcomeId: id, Erp: &mlcv1.ErpRef{Erp: mlcv1.Erp_ERP_JDE, Connection: "jde-corp", Company: "00001"},
		Invoice: &mlcv1.InvoiceKey{InvoiceId: doc + "/RI/001", InvoiceNo: doc, DocType: "RI", Suffix: "001"}, Kind: kind,
		PaymentId: "PM2", AmountMinor: 12550, Currency: "USD", OccurredAt: occurred, CustomerId: "4242",
	}}
}

func TestOutcomesLandInTheRightERPOnce(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	confirmed := mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CONFIRMED

	first, err := e.client.PostPaymentOutcome(ctx, ifsPayment("EV-IFS-1", confirmed))
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.client.PostPaymentOutcome(ctx, ifsPayment("EV-IFS-1", confirmed))
	if err != nil || !again.GetAlreadyPosted() || again.GetErpReference() != first.GetErpReference() || first.GetAlreadyPosted() {
		t.Fatalf("repeat: %v %v (first %v)", again, err, first)
	}
	if mp := e.ifs.MixedPayments(); len(mp) != 1 || mp[0].State != ifssim.MixedApproved || mp[0].Company != "10" ||
		mp[0].LumpSums[0].Transactions[0].InvoiceID != 7 || mp[0].LumpSums[0].Amount != "100.10" || first.GetErpReference() != "MP 10/1" {
		t.Errorf("IFS mixed payments %+v (reference %q), want one approved of 100.10 on invoice 10/7", mp, first.GetErpReference())
	}
	// Its payout reports the same payment: posted, as the same mixed payment.
	paidOut := ifsPayment("EV-IFS-1b", mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_PAID_OUT)
	paidOut.Outcome.PayoutId = "PO1"
	if r, err := e.client.PostPaymentOutcome(ctx, paidOut); err != nil || r.GetErpReference() != first.GetErpReference() {
		t.Errorf("payout: %v %v", r, err)
	}
	if inv, _ := e.ifs.Invoice("10", 7); inv.OpenAmount != "0.00" && inv.OpenAmount != "0" {
		t.Errorf("IFS invoice still open: %+v", inv)
	}

	// Eight concurrent posts of one JDE outcome write one receipt: while
	// one holds the claim the others are told to retry (ABORTED), as the
	// orchestrator does, and then find it posted.
	var wg sync.WaitGroup
	refs := make([]string, 8)
	var aborted atomic.Int64
	busyCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for i := range refs {
		wg.Go(func() {
			for {
				r, err := e.client.PostPaymentOutcome(busyCtx, jdePayment("EV-JDE-1", "1001", confirmed))
				if status.Code(err) == codes.Aborted {
					aborted.Add(1)
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				refs[i] = r.GetErpReference()
				return
			}
		})
	}
	wg.Wait()
	t.Logf("%d calls were told to retry", aborted.Load())
	for _, r := range refs {
		if r != refs[0] || r == "" {
			t.Errorf("references differ: %v", refs)
			break
		}
	}
	if rc := e.jde.Receipts(); len(rc) != 1 || rc[0].RUDOC != 1001 || rc[0].RUCKAM != 12550 || rc[0].RUGLBA != "M30.1110.GC" {
		t.Errorf("JDE receipts %+v, want one of 125.50 on 1001 to M30's GL account", rc)
	}

	// Failure after confirmation, mandate status, refund: each to its ERP.
	if _, err := e.client.PostPaymentOutcome(ctx, ifsPayment("EV-IFS-2", mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_FAILED)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.PostMandateStatus(ctx, &mlcv1.PostMandateStatusRequest{Outcome: &mlcv1.MandateOutcome{
		SchemaVersion: 1, OutcomeId: "EV-M-1", Erp: &mlcv1.ErpRef{Erp: mlcv1.Erp_ERP_IFS, Connection: "ifs-acme", Company: "10"},
		CustomerId: "C10", MandateId: "MD1", Status: mlcv1.MandateStatus_MANDATE_STATUS_ACTIVE, OccurredAt: occurred, Scheme: "sepa_core",
	}}); err != nil {
		t.Fatal(err)
	}
	if log := e.ifs.MandateLog(); len(log) != 0 {
		t.Errorf("IFS mandate log %+v: standard IFS has none", log)
	}
	if _, err := e.client.PostMandateStatus(ctx, &mlcv1.PostMandateStatusRequest{Outcome: &mlcv1.MandateOutcome{
		SchemaVersion: 1, OutcomeId: "EV-M-2", Erp: &mlcv1.ErpRef{Erp: mlcv1.Erp_ERP_JDE, Connection: "jde-corp", Company: "00001"},
		CustomerId: "4242", MandateId: "MD2", Status: mlcv1.MandateStatus_MANDATE_STATUS_CANCELLED, OccurredAt: occurred,
	}}); err != nil {
		t.Fatal(err)
	}
	if ms := e.jde.MandateStatuses(); len(ms) != 1 || ms[0].MDID != "MD2" || ms[0].MDST != "cancelled" {
		t.Errorf("JDE mandate statuses %+v", ms)
	}
	if mp := e.ifs.MixedPayments(); len(mp) != 1 || mp[0].State != ifssim.MixedCancelled {
		t.Errorf("IFS mixed payments after the failure: %+v", mp)
	}
	if inv, _ := e.ifs.Invoice("10", 7); inv.OpenAmount != "100.10" {
		t.Errorf("IFS invoice not open again after the failure: %+v", inv)
	}

	// An IFS refund is posted: a repayment to the customer.
	rf, err := e.client.PostRefundOutcome(ctx, &mlcv1.PostRefundOutcomeRequest{Outcome: &mlcv1.RefundOutcome{
		SchemaVersion: 1, OutcomeId: "EV-R-1", Erp: &mlcv1.ErpRef{Erp: mlcv1.Erp_ERP_IFS, Connection: "ifs-acme", Company: "10"},
		RefundId: "CN-1", Invoice: &mlcv1.InvoiceKey{InvoiceId: "7"}, Kind: mlcv1.RefundOutcomeKind_REFUND_OUTCOME_KIND_PAID,
		GocardlessRefundId: "RF1", PaymentId: "PM1", AmountMinor: 2500, Currency: "EUR", OccurredAt: occurred, CustomerId: "C10",
	}})
	if err != nil || rf.GetErpReference() == "none" || rf.GetErpReference() == "" {
		t.Fatalf("IFS refund: %v %v", rf, err)
	}
	mp := e.ifs.MixedPayments()
	if last := mp[len(mp)-1]; last.State != ifssim.MixedApproved || last.LumpSums[0].Amount != "-25.00" ||
		last.LumpSums[0].Transactions[0].PaymentReference != "RF1" {
		t.Errorf("IFS repayment %+v", last)
	}
}

func TestErrorsCarryActionableCodes(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	confirmed := mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CONFIRMED
	unknownConn := ifsPayment("EV-X1", confirmed)
	unknownConn.Outcome.Erp.Connection = "nobody"
	unknownInvoice := ifsPayment("EV-X2", confirmed)
	unknownInvoice.Outcome.Invoice.InvoiceId = "999"
	noID := ifsPayment("", confirmed)
	noKind := ifsPayment("EV-X3", mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_UNSPECIFIED)
	wrongERP := jdePayment("EV-X4", "1001", confirmed)
	wrongERP.Outcome.Erp.Connection = "ifs-acme"
	tests := []struct {
		name string
		req  *mlcv1.PostPaymentOutcomeRequest
		want codes.Code
	}{
		{"unknown connection", unknownConn, codes.NotFound},
		{"unknown invoice", unknownInvoice, codes.NotFound},
		{"no outcome id", noID, codes.InvalidArgument},
		{"no kind", noKind, codes.InvalidArgument},
		{"connection of the other ERP", wrongERP, codes.NotFound},
		{"business unit without a GL account", jdePayment("EV-X5", "1002", confirmed), codes.InvalidArgument},
	}
	for _, tc := range tests {
		_, err := e.client.PostPaymentOutcome(ctx, tc.req)
		if status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}
	if len(e.ifs.MixedPayments()) != 0 || len(e.jde.Receipts()) != 0 {
		t.Errorf("refused outcomes were written")
	}
}

func TestOutagesAndRacesAreHandled(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	confirmed := mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CONFIRMED

	// IFS down: Unavailable; after recovery the retry posts once.
	e.ifs.FailNext(1000, 503)
	if _, err := e.client.PostPaymentOutcome(ctx, ifsPayment("EV-O1", confirmed)); status.Code(err) != codes.Unavailable {
		t.Fatalf("IFS down: %v, want Unavailable", err)
	}
	e.ifs.FailNext(0, 503)
	time.Sleep(100 * time.Millisecond)
	deadline := time.Now().Add(45 * time.Second)
	for {
		_, err := e.client.PostPaymentOutcome(ctx, ifsPayment("EV-O1", confirmed))
		if err == nil {
			break
		}
		if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
			t.Fatalf("after recovery: %v", err)
		}
		time.Sleep(time.Second) // the breaker lets a probe through after its open period
	}
	if mp := e.ifs.MixedPayments(); len(mp) != 1 || mp[0].State != ifssim.MixedApproved {
		t.Errorf("mixed payments after outage and retry: %+v, want 1 approved", mp)
	}

	// An ETag race on IFS is re-read and retried inside the call.
	e.ifs.RaceNextWrites(1)
	if _, err := e.client.PostPaymentOutcome(ctx, ifsPayment("EV-O2", mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_FAILED)); err != nil {
		t.Fatalf("after one 412: %v", err)
	}
	// A race that never ends is Aborted.
	second := ifsPayment("EV-O2b", confirmed)
	second.Outcome.PaymentId = "PM9"
	if _, err := e.client.PostPaymentOutcome(ctx, second); err != nil {
		t.Fatal(err)
	}
	chargeBack := ifsPayment("EV-O3", mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CHARGED_BACK)
	chargeBack.Outcome.PaymentId = "PM9"
	e.ifs.RaceNextWrites(1000)
	if _, err := e.client.PostPaymentOutcome(ctx, chargeBack); status.Code(err) != codes.Aborted || mlcv1.IsPostingInProgress(err) {
		t.Errorf("endless 412s: %v, want Aborted, a race lost (not a posting in progress)", err)
	}
	e.ifs.RaceNextWrites(0)

	// A JDE restart (444) mid-run is a re-login inside the call.
	if _, err := e.client.PostPaymentOutcome(ctx, jdePayment("EV-O4", "1001", confirmed)); err != nil {
		t.Fatal(err)
	}
	e.jde.Restart()
	if _, err := e.client.PostPaymentOutcome(ctx, jdePayment("EV-O5", "1001", mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_FAILED)); err != nil {
		t.Fatalf("after an AIS restart: %v", err)
	}
	if n := len(e.jde.Receipts()); n < 2 {
		t.Errorf("JDE receipts %d: the failure's reversal was not written", n)
	}
}

// TestIFSCamt054Preset: a connection with writeback camt054 posts each
// outcome as a camt.054 file in its directory, once.
func TestIFSCamt054Preset(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	acme, err := e.store.Get(ctx, "ifs-acme")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := e.store.Add(ctx, connections.New{Name: "ifs-camt", Kind: connections.KindIFS, Actor: "test",
		Settings: map[string]any{"base_url": acme.Settings["base_url"], "client_id": "mlc", "company_codes": []any{"10"},
			"requests_per_minute": float64(100000), "writeback": "camt054", "camt054_dir": dir},
		Secrets: map[string]secrets.Value{"client_secret": secrets.NewValue("secret")}}); err != nil {
		t.Fatal(err)
	}
	req := ifsPayment("EV-C-1", mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CONFIRMED)
	req.Outcome.Erp.Connection = "ifs-camt"
	r, err := e.client.PostPaymentOutcome(ctx, req)
	if err != nil || r.GetErpReference() != "mlc-10-PM1-CRDT.xml" {
		t.Fatalf("camt054 posting: %v %v", r, err)
	}
	if data, err := os.ReadFile(filepath.Join(dir, r.GetErpReference())); err != nil || !strings.Contains(string(data), "<Amt Ccy=\"EUR\">100.10</Amt>") {
		t.Errorf("camt.054 file: %v\n%s", err, data)
	}
	paidOut := ifsPayment("EV-C-2", mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_PAID_OUT)
	paidOut.Outcome.Erp.Connection = "ifs-camt"
	if again, err := e.client.PostPaymentOutcome(ctx, paidOut); err != nil || again.GetErpReference() != r.GetErpReference() {
		t.Errorf("payout of the same payment: %v %v", again, err)
	}
	if mp := e.ifs.MixedPayments(); len(mp) != 0 {
		t.Errorf("the camt054 preset created mixed payments: %+v", mp)
	}
}

// TestCamt054DirMustBeUnderERPFilesDir: with ERP_FILES_DIR set (the
// shared volume of deploy/k8s/components/erp-files), an IFS connection
// whose camt054_dir lies elsewhere is refused as invalid settings, one
// under it is served.
func TestCamt054DirMustBeUnderERPFilesDir(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	acme, err := e.store.Get(ctx, "ifs-acme")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for name, dir := range map[string]string{"ifs-inside": filepath.Join(root, "acme"), "ifs-outside": root + "-other", "ifs-dotdot": root + "/../x"} {
		if _, err := e.store.Add(ctx, connections.New{Name: name, Kind: connections.KindIFS, Actor: "test",
			Settings: map[string]any{"base_url": acme.Settings["base_url"], "client_id": "mlc", "company_codes": []any{"10"},
				"writeback": "camt054", "camt054_dir": dir},
			Secrets: map[string]secrets.Value{"client_secret": secrets.NewValue("secret")}}); err != nil {
			t.Fatal(err)
		}
	}
	writers := poster.NewWriters(e.store, time.Minute)
	t.Cleanup(writers.Close)
	writers.ConfineFiles(root)
	if _, _, err := writers.For(ctx, "ifs-inside", connections.KindIFS); err != nil {
		t.Errorf("camt054_dir under ERP_FILES_DIR: %v", err)
	}
	for _, name := range []string{"ifs-outside", "ifs-dotdot"} {
		if _, _, err := writers.For(ctx, name, connections.KindIFS); !errors.Is(err, ifscloud.ErrInvalid) || !strings.Contains(err.Error(), "ERP_FILES_DIR") {
			t.Errorf("%s: err = %v, want invalid settings naming ERP_FILES_DIR", name, err)
		}
	}
}

// TestChargebackCancelledBooksAgain: a charge-back the payer's bank
// cancelled books the collected amount again: in IFS a new approved
// mixed payment beside the cancelled one, in JDE a second receipt; the
// camt054 preset refuses it (its one credit file per payment exists) so
// that AR books it by hand.
func TestChargebackCancelledBooksAgain(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	confirmed := mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CONFIRMED
	back := mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CHARGED_BACK
	reinstated := mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CHARGEBACK_CANCELLED
	for i, k := range []mlcv1.PaymentOutcomeKind{confirmed, back, reinstated, reinstated} {
		if _, err := e.client.PostPaymentOutcome(ctx, ifsPayment(fmt.Sprintf("EV-CBC-%d", min(i, 2)), k)); err != nil {
			t.Fatalf("IFS %v: %v", k, err)
		}
	}
	mp := e.ifs.MixedPayments()
	if len(mp) != 2 || mp[0].State != ifssim.MixedCancelled || mp[1].State != ifssim.MixedApproved || mp[1].LumpSums[0].Amount != "100.10" {
		t.Errorf("IFS mixed payments %+v, want the charged-back one cancelled and one approved of 100.10", mp)
	}
	if inv, _ := e.ifs.Invoice("10", 7); inv.OpenAmount != "0.00" && inv.OpenAmount != "0" {
		t.Errorf("IFS invoice open after the charge-back was cancelled: %+v", inv)
	}
	for i, k := range []mlcv1.PaymentOutcomeKind{confirmed, back, reinstated} {
		if _, err := e.client.PostPaymentOutcome(ctx, jdePayment(fmt.Sprintf("EV-CBC-J%d", i), "1001", k)); err != nil {
			t.Fatalf("JDE %v: %v", k, err)
		}
	}
	if rc := e.jde.Receipts(); len(rc) < 2 || rc[len(rc)-1].RUDOC != 1001 || rc[len(rc)-1].RUCKAM != 12550 {
		t.Errorf("JDE receipts %+v, want the receipt entered again", rc)
	}

	acme, err := e.store.Get(ctx, "ifs-acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Add(ctx, connections.New{Name: "ifs-camt", Kind: connections.KindIFS, Actor: "test",
		Settings: map[string]any{"base_url": acme.Settings["base_url"], "client_id": "mlc", "company_codes": []any{"10"},
			"requests_per_minute": float64(100000), "writeback": "camt054", "camt054_dir": t.TempDir()},
		Secrets: map[string]secrets.Value{"client_secret": secrets.NewValue("secret")}}); err != nil {
		t.Fatal(err)
	}
	req := ifsPayment("EV-CBC-C", reinstated)
	req.Outcome.Erp.Connection = "ifs-camt"
	if _, err := e.client.PostPaymentOutcome(ctx, req); status.Code(err) != codes.InvalidArgument {
		t.Errorf("camt054 reinstatement: %v, want InvalidArgument", err)
	}
}

// TestAuthorisationLinkToJDE: a pending mandate status with the payer's
// authorisation link is kept in MLC_MandateStatus's row (AURL, AUEX), and
// the authorised mandate's status replaces it, link cleared.
func TestAuthorisationLinkToJDE(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	post := func(id, mandate string, status mlcv1.MandateStatus, occurred time.Time, url string) {
		t.Helper()
		o := &mlcv1.MandateOutcome{SchemaVersion: 1, OutcomeId: id,
			Erp: &mlcv1.ErpRef{Erp: mlcv1.Erp_ERP_JDE, Connection: "jde-corp", Company: "00001"}, CustomerId: "4242",
			MandateId: mandate, Status: status, OccurredAt: timestamppb.New(occurred), AuthorisationUrl: url}
		if url != "" {
			o.AuthorisationExpiresAt = timestamppb.New(occurred.Add(7 * 24 * time.Hour))
		}
		if _, err := e.client.PostMandateStatus(ctx, &mlcv1.PostMandateStatusRequest{Outcome: o}); err != nil {
			t.Fatal(err)
		}
	}
	post("EV-L-1", "BRQ1", mlcv1.MandateStatus_MANDATE_STATUS_PENDING, at, "https://pay.gocardless.com/flow/BRF1")
	if ms := e.jde.MandateStatuses(); len(ms) != 1 || ms[0].AURL != "https://pay.gocardless.com/flow/BRF1" || ms[0].AUEX != "2026-03-09T10:00:00Z" {
		t.Fatalf("JDE mandate row %+v, want the link and its expiry", ms)
	}
	post("EV-L-2", "MD1", mlcv1.MandateStatus_MANDATE_STATUS_ACTIVE, at.Add(time.Hour), "")
	if ms := e.jde.MandateStatuses(); len(ms) != 1 || ms[0].MDID != "MD1" || ms[0].AURL != "" {
		t.Fatalf("JDE mandate row %+v after authorisation, want MD1 and no link", ms)
	}
}
