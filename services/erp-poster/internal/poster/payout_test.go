package poster_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/connectors/ifscloud/ifssim"
	"github.com/ml-connector/ml-connector/connectors/jde"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/testsupport/await"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/erp-poster/internal/poster"
)

// addConnection adds an ERP connection to the env's registry.
func (e *env) addConnection(name string, kind connections.Kind, settings map[string]any) {
	e.t.Helper()
	secret := map[string]secrets.Value{"client_secret": secrets.NewValue("secret")}
	if kind == connections.KindJDE {
		secret = map[string]secrets.Value{"password": secrets.NewValue("JDE")}
	}
	if _, err := e.store.Add(context.Background(), connections.New{Name: name, Kind: kind, Actor: "test", Settings: settings, Secrets: secret}); err != nil {
		e.t.Fatal(err)
	}
}

// ifsSettings are ifs-acme's settings (the simulator's URL) with more.
func (e *env) ifsSettings(more map[string]any) map[string]any {
	conn, err := e.store.Get(context.Background(), "ifs-acme")
	if err != nil {
		e.t.Fatal(err)
	}
	s := map[string]any{}
	for k, v := range conn.Settings {
		s[k] = v
	}
	for k, v := range more {
		s[k] = v
	}
	return s
}

func (e *env) jdeSettings(more map[string]any) map[string]any {
	conn, err := e.store.Get(context.Background(), "jde-corp")
	if err != nil {
		e.t.Fatal(err)
	}
	s := map[string]any{}
	for k, v := range conn.Settings {
		s[k] = v
	}
	for k, v := range more {
		s[k] = v
	}
	return s
}

var ifsFees = map[string]any{"payout_fee_accounts": map[string]any{"10": "6570"}, "payout_fee_tax_accounts": map[string]any{"10": "2640"}}

// ifsPayout is a payout of IFS company 10 in EUR: invoice 7 (100.10) and
// invoice 8 (50.00) paid, a charge-back of 20.00 of an earlier payment of
// invoice 9, a refund of 5.00, and GoCardless fees of 1.50 with 0.25 VAT.
func ifsPayout(conn string) *mlcv1.PostPayoutRequest {
	lines := []*mlcv1.PayoutLine{
		{Kind: mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_PAYMENT_PAID_OUT, Invoice: &mlcv1.InvoiceKey{InvoiceId: "7"}, CustomerId: "C10", AmountMinor: 10010, PaymentId: "PM7"},
		{Kind: mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_PAYMENT_PAID_OUT, Invoice: &mlcv1.InvoiceKey{InvoiceId: "8"}, CustomerId: "C10", AmountMinor: 5000, PaymentId: "PM8"},
		{Kind: mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_PAYMENT_CHARGED_BACK, Invoice: &mlcv1.InvoiceKey{InvoiceId: "9"}, CustomerId: "C10", AmountMinor: -2000, PaymentId: "PM9"},
		{Kind: mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_REFUND, Invoice: &mlcv1.InvoiceKey{InvoiceId: "9"}, CustomerId: "C10", AmountMinor: -500, PaymentId: "PM6", RefundId: "RF6"},
	}
	fees := []*mlcv1.PayoutFee{
		{Kind: mlcv1.PayoutFeeKind_PAYOUT_FEE_KIND_GOCARDLESS_FEE, AmountMinor: -100, PaymentId: "PM7", TaxMinor: -17, TaxRateId: "GB_VAT_1"},
		{Kind: mlcv1.PayoutFeeKind_PAYOUT_FEE_KIND_GOCARDLESS_FEE, AmountMinor: -50, PaymentId: "PM8", TaxMinor: -8, TaxRateId: "GB_VAT_1"},
	}
	return &mlcv1.PostPayoutRequest{
		Erp: &mlcv1.ErpRef{Erp: mlcv1.Erp_ERP_IFS, Connection: conn, Company: "10"}, PayoutId: "PO000IFS1", Reference: "ACME-GC-0001",
		ArrivalDate: "2026-04-06", Currency: "EUR", AmountMinor: 10010 + 5000 - 2000 - 500 - 150, PayoutAmountMinor: 12360,
		Lines: lines, FeesMinor: -150, Fees: fees, CreditorId: "CR1", PaidAt: occurred,
	}
}

func (e *env) ifsPayoutInvoices() {
	e.t.Helper()
	if err := e.ifs.PutInvoices(
		ifssim.Invoice{Company: "10", InvoiceID: 8, InvoiceNo: "CI-8", CustomerID: "C10", Currency: "EUR",
			State: ifssim.StatePostedAuth, GrossAmount: "50.00", OpenAmount: "50.00", DueDate: "2026-04-01"},
		ifssim.Invoice{Company: "10", InvoiceID: 9, InvoiceNo: "CI-9", CustomerID: "C10", Currency: "EUR",
			State: ifssim.StatePaidPosted, GrossAmount: "20.00", OpenAmount: "0.00", DueDate: "2026-03-01"},
	); err != nil {
		e.t.Fatal(err)
	}
}

// TestIFSPayoutIsOneMixedPayment: with receipt_on payout the payout is one
// approved mixed payment: its lines pay the invoices, the charge-back and
// the refund go back on the customer's account, the fees and their tax to
// the configured GL accounts; a repeat (lines in another order) writes
// nothing; payment outcomes of the same connection post nothing.
func TestIFSPayoutIsOneMixedPayment(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	e.ifsPayoutInvoices()
	e.addConnection("ifs-payout", connections.KindIFS, e.ifsSettings(map[string]any{"receipt_on": "payout",
		"payout_fee_accounts": ifsFees["payout_fee_accounts"], "payout_fee_tax_accounts": ifsFees["payout_fee_tax_accounts"]}))

	req := ifsPayout("ifs-payout")
	first, err := e.client.PostPayout(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.GetAlreadyPosted() || first.GetErpReference() != "MP 10/1" || first.GetFeeReference() != "MP 10/1" {
		t.Fatalf("first posting %v", first)
	}
	mps := e.ifs.MixedPayments()
	if len(mps) != 1 || mps[0].State != ifssim.MixedApproved || mps[0].Description != "PO000IFS1" || mps[0].VoucherDate != "2026-04-06" {
		t.Fatalf("mixed payments %+v, want one approved for the payout", mps)
	}
	byRef := map[string][]ifssim.MixedTransaction{}
	var lumps []string
	for _, l := range mps[0].LumpSums {
		lumps = append(lumps, l.Amount)
		for _, tr := range l.Transactions {
			byRef[tr.PaymentReference] = append(byRef[tr.PaymentReference], tr)
		}
	}
	if len(lumps) != 5 {
		t.Errorf("lump sums %v, want one per line and one for the fees", lumps)
	}
	if tr := byRef["PM7"]; len(tr) != 1 || tr[0].InvoiceID != 7 || tr[0].Amount != "100.10" {
		t.Errorf("PM7 %+v, want 100.10 matched to invoice 7", tr)
	}
	if tr := byRef["PM9"]; len(tr) != 1 || tr[0].InvoiceID != 0 || tr[0].Amount != "-20.00" || tr[0].Identity != "C10" {
		t.Errorf("charge-back %+v, want -20.00 on C10's account", tr)
	}
	if tr := byRef["RF6"]; len(tr) != 1 || tr[0].Amount != "-5.00" {
		t.Errorf("refund %+v, want -5.00", tr)
	}
	fees := byRef["PO000IFS1"]
	if len(fees) != 2 || fees[0].TransactionType != ifssim.TransactionDirectCash || fees[0].Account != "6570" || fees[0].Amount != "-1.25" ||
		fees[1].Account != "2640" || fees[1].Amount != "-0.25" {
		t.Errorf("fee transactions %+v, want -1.25 to 6570 and the VAT -0.25 to 2640", fees)
	}
	for id, want := range map[int64]string{7: ifssim.StatePaidPosted, 8: ifssim.StatePaidPosted} {
		if inv, _ := e.ifs.Invoice("10", id); inv.State != want {
			t.Errorf("invoice %d is %s, want %s", id, inv.State, want)
		}
	}

	// A repeat, lines reversed: nothing written, the same references.
	slicesReverse(req.Lines)
	again, err := e.client.PostPayout(ctx, req)
	if err != nil || !again.GetAlreadyPosted() || again.GetErpReference() != first.GetErpReference() ||
		again.GetFeeReference() != first.GetFeeReference() || !again.GetPostedAt().AsTime().Equal(first.GetPostedAt().AsTime()) {
		t.Fatalf("repeat: %v %v", again, err)
	}
	if n := len(e.ifs.MixedPayments()); n != 1 {
		t.Errorf("%d mixed payments after the repeat, want 1", n)
	}

	// The payout books the receipts: the payment outcome posts nothing.
	confirmed := ifsPayment("EV-PO-1", mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CONFIRMED)
	confirmed.Outcome.Erp.Connection = "ifs-payout"
	if r, err := e.client.PostPaymentOutcome(ctx, confirmed); err != nil || r.GetErpReference() != "none" {
		t.Errorf("payment outcome under receipt_on payout: %v %v, want nothing posted", r, err)
	}
	if n := len(e.ifs.MixedPayments()); n != 1 {
		t.Errorf("%d mixed payments, want 1", n)
	}
}

func slicesReverse[T any](s []T) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}

// TestIFSPayoutBooksOnlyFeesWhenPaymentsAreBooked: with receipt_on
// confirmed (the default) the collected payment was booked by its outcome;
// the payout must not pay the invoice again, only book the fees.
func TestIFSPayoutBooksOnlyFeesWhenPaymentsAreBooked(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	e.addConnection("ifs-fees", connections.KindIFS, e.ifsSettings(map[string]any{"payout_fee_accounts": map[string]any{"10": "6570"}}))
	confirmed := ifsPayment("EV-F-1", mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CONFIRMED)
	confirmed.Outcome.Erp.Connection = "ifs-fees"
	if _, err := e.client.PostPaymentOutcome(ctx, confirmed); err != nil {
		t.Fatal(err)
	}
	req := &mlcv1.PostPayoutRequest{
		Erp: &mlcv1.ErpRef{Erp: mlcv1.Erp_ERP_IFS, Connection: "ifs-fees", Company: "10"}, PayoutId: "PO000IFS2", Reference: "ACME-GC-0002",
		ArrivalDate: "2026-04-06", Currency: "EUR", AmountMinor: 10010 - 120,
		Lines:     []*mlcv1.PayoutLine{{Kind: mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_PAYMENT_PAID_OUT, Invoice: &mlcv1.InvoiceKey{InvoiceId: "7"}, CustomerId: "C10", AmountMinor: 10010, PaymentId: "PM1"}},
		FeesMinor: -120, Fees: []*mlcv1.PayoutFee{{Kind: mlcv1.PayoutFeeKind_PAYOUT_FEE_KIND_GOCARDLESS_FEE, AmountMinor: -120, PaymentId: "PM1", TaxMinor: -20}},
	}
	r, err := e.client.PostPayout(ctx, req)
	if err != nil || r.GetErpReference() != "MP 10/2" {
		t.Fatalf("payout: %v %v", r, err)
	}
	mps := e.ifs.MixedPayments()
	if len(mps) != 2 || len(mps[1].LumpSums) != 1 {
		t.Fatalf("mixed payments %+v, want the payment's and the fees'", mps)
	}
	fee := mps[1].LumpSums[0]
	if fee.Amount != "-1.20" || len(fee.Transactions) != 1 || fee.Transactions[0].Account != "6570" || fee.Transactions[0].Amount != "-1.20" {
		t.Errorf("fee lump sum %+v, want -1.20 (tax included: no tax account) to 6570", fee)
	}
	if inv, _ := e.ifs.Invoice("10", 7); inv.OpenAmount != "0.00" && inv.OpenAmount != "0" {
		t.Errorf("invoice 7 open %s, want paid once", inv.OpenAmount)
	}
}

// TestIFSPayoutCamt054 writes the payout as one camt.054 file: an entry
// per line and one per fee account, written once.
func TestIFSPayoutCamt054(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	e.ifsPayoutInvoices()
	dir := t.TempDir()
	e.addConnection("ifs-camt", connections.KindIFS, e.ifsSettings(map[string]any{"writeback": "camt054", "camt054_dir": dir,
		"receipt_on": "payout", "payout_fee_accounts": ifsFees["payout_fee_accounts"], "payout_fee_tax_accounts": ifsFees["payout_fee_tax_accounts"]}))
	first, err := e.client.PostPayout(ctx, ifsPayout("ifs-camt"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, first.GetErpReference()))
	if err != nil {
		t.Fatalf("file %q: %v", first.GetErpReference(), err)
	}
	xml := string(data)
	for _, want := range []string{"<MsgId>10-PO000IFS1-PAYOUT</MsgId>", `<Amt Ccy="EUR">100.10</Amt>`, "<Nb>CI-7</Nb>",
		"<Cd>ACMT</Cd>", "<SubFmlyCd>CHRG</SubFmlyCd>", "<AddtlNtryInf>GL 6570</AddtlNtryInf>", "<AddtlNtryInf>GL 2640</AddtlNtryInf>",
		`<Amt Ccy="EUR">1.25</Amt>`, "<SubFmlyCd>UPDD</SubFmlyCd>", "<SubFmlyCd>ESCT</SubFmlyCd>"} {
		if !strings.Contains(xml, want) {
			t.Errorf("camt.054 lacks %s:\n%s", want, xml)
		}
	}
	if n := strings.Count(xml, "<Ntry>"); n != 6 {
		t.Errorf("%d entries, want 4 lines and 2 fee entries", n)
	}
	again, err := e.client.PostPayout(ctx, ifsPayout("ifs-camt"))
	if err != nil || !again.GetAlreadyPosted() || again.GetErpReference() != first.GetErpReference() {
		t.Errorf("repeat: %v %v", again, err)
	}
}

var jdeAccounts = map[string]any{
	"payout_fee_accounts":     map[string]any{"00001": "HQ.6570"},
	"payout_fee_tax_accounts": map[string]any{"00001": "HQ.2640"},
	"payout_bank_accounts":    map[string]any{"00001": "HQ.1110.BANK"},
}

func jdePayout(conn string) *mlcv1.PostPayoutRequest {
	return &mlcv1.PostPayoutRequest{
		Erp: &mlcv1.ErpRef{Erp: mlcv1.Erp_ERP_JDE, Connection: conn, Company: "00001"}, PayoutId: "PO000JDE1", Reference: "CORP-GC-0001",
		ArrivalDate: "2026-04-06", Currency: "USD", AmountMinor: 12550 + 5000 - 1000 - 180,
		Lines: []*mlcv1.PayoutLine{
			{Kind: mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_PAYMENT_PAID_OUT, Invoice: &mlcv1.InvoiceKey{InvoiceId: "1001/RI/001"}, CustomerId: "4242", AmountMinor: 12550, PaymentId: "PM1001"},
			{Kind: mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_PAYMENT_PAID_OUT, Invoice: &mlcv1.InvoiceKey{InvoiceId: "1002/RI/001"}, CustomerId: "4242", AmountMinor: 5000, PaymentId: "PM1002"},
			{Kind: mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_PAYMENT_CHARGED_BACK, Invoice: &mlcv1.InvoiceKey{InvoiceId: "1002/RI/001"}, CustomerId: "4242", AmountMinor: -1000, PaymentId: "PM0999"},
		},
		FeesMinor: -180, Fees: []*mlcv1.PayoutFee{{Kind: mlcv1.PayoutFeeKind_PAYOUT_FEE_KIND_GOCARDLESS_FEE, AmountMinor: -180, TaxMinor: -30}},
	}
}

// TestJDEPayoutIsAReceiptsBatchAndAFeeEntry: with receipt_on payout the
// payout's collected payments are F03B13Z1 rows of one batch (the payout)
// on the payout bank account, and its fees one balanced F0911Z1 journal
// entry; a repeat writes nothing.
func TestJDEPayoutIsAReceiptsBatchAndAFeeEntry(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	settings := e.jdeSettings(map[string]any{"receipt_on": "payout"})
	for k, v := range jdeAccounts {
		settings[k] = v
	}
	e.addConnection("jde-payout", connections.KindJDE, settings)

	first, err := e.client.PostPayout(ctx, jdePayout("jde-payout"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(first.GetErpReference(), "PO000JDE1 (2 receipts)") || !strings.HasPrefix(first.GetFeeReference(), "F0911Z1 JDE/PO000JDE1/") {
		t.Errorf("references %q / %q", first.GetErpReference(), first.GetFeeReference())
	}
	rc := e.jde.Receipts()
	if len(rc) != 2 {
		t.Fatalf("receipts %+v, want the two collected payments", rc)
	}
	for _, r := range rc {
		if r.RUEDBT != "PO000JDE1" || r.RUGLBA != "HQ.1110.BANK" || !strings.Contains(r.RURMK, "CORP-GC-0001") {
			t.Errorf("receipt %+v, want batch PO000JDE1 on HQ.1110.BANK with the bank reference", r)
		}
	}
	je := e.jde.JournalInputs()
	got := map[string]int64{}
	for _, l := range je {
		got[l.VNANI] += l.VNAA
	}
	if len(je) != 3 || got["HQ.6570"] != 150 || got["HQ.2640"] != 30 || got["HQ.1110.BANK"] != -180 {
		t.Errorf("journal entry %+v, want fees 1.50 and VAT 0.30 debited, 1.80 credited to the bank", je)
	}

	again, err := e.client.PostPayout(ctx, jdePayout("jde-payout"))
	if err != nil || !again.GetAlreadyPosted() || again.GetErpReference() != first.GetErpReference() || again.GetFeeReference() != first.GetFeeReference() {
		t.Fatalf("repeat: %v %v", again, err)
	}
	if len(e.jde.Receipts()) != 2 || len(e.jde.JournalInputs()) != 3 {
		t.Errorf("the repeat wrote: %d receipts, %d journal lines", len(e.jde.Receipts()), len(e.jde.JournalInputs()))
	}
	// A payment outcome of the same connection books no receipt of its own.
	p := jdePayment("EV-JP-1", "1001", mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CONFIRMED)
	p.Outcome.Erp.Connection = "jde-payout"
	if r, err := e.client.PostPaymentOutcome(ctx, p); err != nil || r.GetErpReference() != "none" {
		t.Errorf("payment outcome under receipt_on payout: %v %v", r, err)
	}
}

// TestJDEPayoutFeesOnly: with receipts booked per payment (the default),
// the payout is its fee entry alone.
func TestJDEPayoutFeesOnly(t *testing.T) {
	e := start(t)
	settings := e.jdeSettings(nil)
	for k, v := range jdeAccounts {
		settings[k] = v
	}
	e.addConnection("jde-fees", connections.KindJDE, settings)
	r, err := e.client.PostPayout(context.Background(), jdePayout("jde-fees"))
	if err != nil || r.GetErpReference() != r.GetFeeReference() || !strings.HasPrefix(r.GetErpReference(), "F0911Z1 ") {
		t.Fatalf("payout: %v %v", r, err)
	}
	if len(e.jde.Receipts()) != 0 || len(e.jde.JournalInputs()) != 3 {
		t.Errorf("%d receipts (want 0) and %d journal lines (want 3)", len(e.jde.Receipts()), len(e.jde.JournalInputs()))
	}
}

// TestPayoutRefusals: requests that cannot add up, and settings that
// cannot post, are refused with codes the orchestrator acts on and a
// message naming what to fix.
func TestPayoutRefusals(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	e.ifsPayoutInvoices()
	// ifs-acme has no fee accounts.
	if _, err := e.client.PostPayout(ctx, ifsPayout("ifs-acme")); status.Code(err) != codes.FailedPrecondition ||
		!strings.Contains(err.Error(), "payout_fee_accounts") {
		t.Errorf("fees without a fee account: %v, want FAILED_PRECONDITION naming payout_fee_accounts", err)
	}
	// Settings that do not parse are reported at start-up, and refused
	// when the connection is used.
	if err := poster.CheckSettings(ctx, e.store); err != nil {
		t.Fatalf("good settings reported: %v", err)
	}
	e.addConnection("ifs-bad", connections.KindIFS, e.ifsSettings(map[string]any{"payout_fee_accounts": map[string]any{"99": "6570"}}))
	if err := poster.CheckSettings(ctx, e.store); err == nil || !strings.Contains(err.Error(), `connection "ifs-bad"`) ||
		!strings.Contains(err.Error(), `company "99" is not one of company_codes`) {
		t.Errorf("start-up check: %v, want ifs-bad's fee account named", err)
	}
	if _, err := e.client.PostPayout(ctx, ifsPayout("ifs-bad")); status.Code(err) != codes.FailedPrecondition ||
		!strings.Contains(err.Error(), `company "99" is not one of company_codes`) {
		t.Errorf("bad settings: %v", err)
	}
	bad := func(change func(*mlcv1.PostPayoutRequest)) *mlcv1.PostPayoutRequest {
		r := ifsPayout("ifs-acme")
		change(r)
		return r
	}
	for name, tc := range map[string]struct {
		req  *mlcv1.PostPayoutRequest
		want string
	}{
		"amount off by one":      {bad(func(r *mlcv1.PostPayoutRequest) { r.AmountMinor++ }), "is not lines"},
		"fees not the sum":       {bad(func(r *mlcv1.PostPayoutRequest) { r.FeesMinor = -100 }), "fees_minor -100 is not the sum"},
		"refund as a credit":     {bad(func(r *mlcv1.PostPayoutRequest) { r.Lines[3].AmountMinor = 500; r.AmountMinor += 1000 }), "wrong sign"},
		"no payout id":           {bad(func(r *mlcv1.PostPayoutRequest) { r.PayoutId = "" }), "payout_id"},
		"no bank reference":      {bad(func(r *mlcv1.PostPayoutRequest) { r.Reference = "" }), "reference"},
		"tax above the fee":      {bad(func(r *mlcv1.PostPayoutRequest) { r.Fees[0].TaxMinor = -101 }), "tax_minor"},
		"line with no kind":      {bad(func(r *mlcv1.PostPayoutRequest) { r.Lines[0].Kind = 0 }), "kind is required"},
		"not a date":             {bad(func(r *mlcv1.PostPayoutRequest) { r.ArrivalDate = "06/04/2026" }), "arrival_date"},
		"payment paid out twice": {bad(func(r *mlcv1.PostPayoutRequest) { r.Lines[1].PaymentId = "PM7" }), "paid out by another line"},
		"nothing in a payout":    {bad(func(r *mlcv1.PostPayoutRequest) { r.Lines, r.Fees, r.AmountMinor, r.FeesMinor = nil, nil, 0, 0 }), "at least one"},
	} {
		if _, err := e.client.PostPayout(ctx, tc.req); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want INVALID_ARGUMENT with %q", name, err, tc.want)
		}
	}
	if n := len(e.ifs.MixedPayments()); n != 0 {
		t.Errorf("refused payouts wrote %d mixed payments", n)
	}
}

// TestPayoutClaim: a payout being posted by another call (a live claim)
// is ABORTED, never posted twice; a claim whose holder died (its lease ran
// out) is taken over and the payout posted.
func TestPayoutClaim(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	e.ifsPayoutInvoices()
	e.addConnection("ifs-payout", connections.KindIFS, e.ifsSettings(map[string]any{"receipt_on": "payout",
		"payout_fee_accounts": ifsFees["payout_fee_accounts"]}))
	conn, err := e.store.Get(ctx, "ifs-payout")
	if err != nil {
		t.Fatal(err)
	}
	key := "payout/ifs/ifs-payout/10/PO000IFS1"
	if _, err := e.db.Exec(ctx, `INSERT INTO erp_postings (outcome_id, connection_id, erp, company, kind, status, attempts)
		VALUES ($1, $2, 'ifs', '10', 'payout', 'pending', 1)`, key, conn.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.PostPayout(ctx, ifsPayout("ifs-payout")); status.Code(err) != codes.Aborted || !mlcv1.IsPostingInProgress(err) {
		t.Fatalf("payout claimed by another call: %v, want ABORTED with POSTING_IN_PROGRESS", err)
	}
	if n := len(e.ifs.MixedPayments()); n != 0 {
		t.Fatalf("%d mixed payments written under another's claim", n)
	}
	// The holder died: its lease runs out.
	if _, err := e.db.Exec(ctx, `ALTER TABLE erp_postings DISABLE TRIGGER erp_postings_touch`); err != nil {
		t.Fatal(err)
	}
	_, err = e.db.Exec(ctx, `UPDATE erp_postings SET updated_at = now() - interval '1 hour' WHERE outcome_id = $1`, key)
	if _, err2 := e.db.Exec(ctx, `ALTER TABLE erp_postings ENABLE TRIGGER erp_postings_touch`); err != nil || err2 != nil {
		t.Fatal(err, err2)
	}
	r, err := e.client.PostPayout(ctx, ifsPayout("ifs-payout"))
	if err != nil || r.GetAlreadyPosted() || len(e.ifs.MixedPayments()) != 1 {
		t.Fatalf("after the lease ran out: %v %v, %d mixed payments", r, err, len(e.ifs.MixedPayments()))
	}
	var attempts int
	var state string
	if err := e.db.QueryRow(ctx, `SELECT attempts, status FROM erp_postings WHERE outcome_id = $1`, key).Scan(&attempts, &state); err != nil ||
		attempts != 2 || state != "posted" {
		t.Errorf("row: %d attempts, %s (%v)", attempts, state, err)
	}
}

// TestJDEPayoutOrchestrationsPreset: under write_preset orchestrations the
// payout's receipts go through ml-connector's receipt orchestration, once.
func TestJDEPayoutOrchestrationsPreset(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	settings := e.jdeSettings(map[string]any{"receipt_on": "payout", "write_preset": "orchestrations"})
	for k, v := range jdeAccounts {
		settings[k] = v
	}
	e.addConnection("jde-own", connections.KindJDE, settings)
	first, err := e.client.PostPayout(ctx, jdePayout("jde-own"))
	if err != nil || first.GetErpReference() != "2 receipts of payout PO000JDE1" {
		t.Fatalf("payout: %v %v", first, err)
	}
	rc := e.jde.Receipts()
	if len(rc) != 2 || rc[0].RUGLBA != "HQ.1110.BANK" || !strings.Contains(rc[0].RURMK, "PO000JDE1 CORP-GC-0001") {
		t.Fatalf("receipts %+v, want two on the payout bank account naming the payout", rc)
	}
	again, err := e.client.PostPayout(ctx, jdePayout("jde-own"))
	if err != nil || !again.GetAlreadyPosted() || len(e.jde.Receipts()) != 2 || len(e.jde.JournalInputs()) != 3 {
		t.Errorf("repeat: %v %v, %d receipts, %d journal lines", again, err, len(e.jde.Receipts()), len(e.jde.JournalInputs()))
	}
}

// TestPayoutOutlivesItsCaller: a caller whose deadline ends mid-posting
// gets DEADLINE_EXCEEDED, the posting runs to its end, a retry meanwhile
// is told to wait (ABORTED), and then answers already_posted.
func TestPayoutOutlivesItsCaller(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	e.ifsPayoutInvoices()
	e.addConnection("ifs-payout", connections.KindIFS, e.ifsSettings(map[string]any{"receipt_on": "payout",
		"payout_fee_accounts": ifsFees["payout_fee_accounts"]}))
	e.ifs.SetLatency(100 * time.Millisecond) // the posting takes about twenty requests: 2 s
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if _, err := e.client.PostPayout(short, ifsPayout("ifs-payout")); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("short deadline: %v, want DEADLINE_EXCEEDED", err)
	}
	await.Until(t, 30*time.Second, "the payout posted after its caller left", func() bool {
		r, err := e.client.PostPayout(ctx, ifsPayout("ifs-payout"))
		if status.Code(err) == codes.Aborted {
			return false
		}
		if err != nil || !r.GetAlreadyPosted() {
			t.Fatalf("after the caller left: %v %v", r, err)
		}
		return true
	})
	if mp := e.ifs.MixedPayments(); len(mp) != 1 || mp[0].State != ifssim.MixedApproved {
		t.Errorf("mixed payments %+v, want one approved", mp)
	}
}

// TestPayoutClaimTakenOverStopsTheWrite: a call whose claim was taken
// over while it wrote (its lease ran out, and another call claimed the
// posting) stops writing at its next renewal and answers ABORTED; it
// neither records the posting nor marks the taker's claim failed, which
// would let a third call write beside the taker. The taker then posts the
// payout once, resuming what the first call wrote.
func TestPayoutClaimTakenOverStopsTheWrite(t *testing.T) {
	t.Cleanup(poster.SetLeaseRenew(50 * time.Millisecond))
	e := start(t)
	ctx := context.Background()
	e.ifsPayoutInvoices()
	e.addConnection("ifs-payout", connections.KindIFS, e.ifsSettings(map[string]any{"receipt_on": "payout",
		"payout_fee_accounts": ifsFees["payout_fee_accounts"]}))
	e.ifs.SetLatency(100 * time.Millisecond) // the posting takes about twenty requests: 2 s
	key := "payout/ifs/ifs-payout/10/PO000IFS1"
	first := make(chan error, 1)
	go func() {
		_, err := e.client.PostPayout(ctx, ifsPayout("ifs-payout"))
		first <- err
	}()
	await.Until(t, 10*time.Second, "the first call's claim", func() bool {
		var status string
		return e.db.QueryRow(ctx, `SELECT status FROM erp_postings WHERE outcome_id = $1`, key).Scan(&status) == nil && status == "pending"
	})
	// Another call takes the claim over, as claim does once a lease ran out.
	if _, err := e.db.Exec(ctx, `UPDATE erp_postings SET attempts = attempts + 1 WHERE outcome_id = $1`, key); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-first:
	case <-time.After(30 * time.Second):
		t.Fatal("the first call did not return")
	}
	if status.Code(err) != codes.Aborted {
		t.Fatalf("first call after its claim was taken over: %v, want ABORTED", err)
	}
	var state string
	var attempts int
	if err := e.db.QueryRow(ctx, `SELECT status, attempts FROM erp_postings WHERE outcome_id = $1`, key).Scan(&state, &attempts); err != nil ||
		state != "pending" || attempts != 2 {
		t.Fatalf("row %s with %d attempts (%v), want the taker's claim (pending, 2) left alone", state, attempts, err)
	}
	// The taker dies too; its lease runs out, and the next call finishes.
	if _, err := e.db.Exec(ctx, `ALTER TABLE erp_postings DISABLE TRIGGER erp_postings_touch`); err != nil {
		t.Fatal(err)
	}
	_, err = e.db.Exec(ctx, `UPDATE erp_postings SET updated_at = now() - interval '1 hour' WHERE outcome_id = $1`, key)
	if _, err2 := e.db.Exec(ctx, `ALTER TABLE erp_postings ENABLE TRIGGER erp_postings_touch`); err != nil || err2 != nil {
		t.Fatal(err, err2)
	}
	r, err := e.client.PostPayout(ctx, ifsPayout("ifs-payout"))
	if err != nil || r.GetAlreadyPosted() {
		t.Fatalf("resumed posting: %v %v", r, err)
	}
	if mp := e.ifs.MixedPayments(); len(mp) != 1 || mp[0].State != ifssim.MixedApproved {
		t.Errorf("mixed payments %+v, want one approved", mp)
	}
}

// What erp-poster accepts in one payout request the ERP connectors accept
// too, so a deposit the orchestrator queued within mlcv1's bounds is never
// refused by the connector after erp-poster took it.
func TestPayoutBoundsWithinTheConnectors(t *testing.T) {
	if mlcv1.MaxPayoutLines > ifscloud.MaxPayoutLines || mlcv1.MaxPayoutLines > jde.MaxPayoutLines {
		t.Errorf("a request may carry %d lines, IFS takes %d and JDE %d", mlcv1.MaxPayoutLines, ifscloud.MaxPayoutLines, jde.MaxPayoutLines)
	}
}
