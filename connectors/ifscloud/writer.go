package ifscloud

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ml-connector/ml-connector/platform/retry"
)

// Writer posts collection outcomes, refunds and mandate statuses into IFS
// Cloud the way standard IFS records customer payments, chosen per
// connection by the writeback setting:
//
//   - mixed_payment (default): a collected payment becomes a customer
//     Mixed Payment on the GoCardless cash account, one lump sum, one
//     customer payment line matched to the invoice, approved; a failure,
//     charge-back or cancellation after collection cancels that mixed
//     payment, which unpays the invoice. A paid refund is a mixed payment
//     with a negative line (a repayment), matched to the ERP's refund
//     document when it is an invoice of the company, else on account.
//   - camt054: each outcome becomes an ISO 20022 camt.054 notification
//     file for IFS External Files (file type ExtMixedPayment, template
//     MXP_CAMT), which IFS loads and matches into mixed payments.
//
// Every write is idempotent by outcome id: the outcome id is the mixed
// payment's reference (mixed_payment_reference_field), every step first
// looks for what an earlier attempt created, and the approve and cancel
// actions carry If-Match, so a concurrent change costs a 412, a re-read
// and another attempt (write_attempts at most), never a second payment.
// Creates are never repeated blindly (see request.once). erp-poster lets
// one call at a time write an outcome id (its claim); PostPayout is
// idempotent the same way by payout id (payout.go).
//
// Inputs are plain structs rather than the mlc.v1 messages, so the
// connector does not depend on the contracts: erp-poster maps
// PaymentOutcome kinds to PaymentStatus (CONFIRMED and PAID_OUT to
// PaymentPaid) and converts amount_minor to a decimal string.
//
// Errors match ErrInvalid (bad input or IFS refused it), ErrNotFound
// (unknown invoice or customer, or a company the connection does not
// have), ErrConflict (every attempt lost an ETag race) or ErrUnavailable.
type Writer struct {
	c     *Client
	files Outbox
	// locks serialise, within the process, the writes about one
	// GoCardless payment or refund (its confirmation and its payout may
	// arrive at once); erp-poster's claim on an outcome id (a lease) lets
	// one call across replicas post it.
	locks *[64]sync.Mutex
}

// NewWriter returns a Writer over c.
func NewWriter(c *Client) *Writer { return &Writer{c: c, locks: new([64]sync.Mutex)} }

// lock takes the lock of one company's GoCardless id.
func (w *Writer) lock(company, id string) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(company + "\x00" + id))
	m := &w.locks[h.Sum32()%uint32(len(w.locks))]
	m.Lock()
	return m.Unlock
}

// PaymentStatus is what happened to a collection, in IFS's terms.
type PaymentStatus string

const (
	// PaymentPaid books the collected amount against the invoice (reduces
	// the open amount; the invoice closes when nothing is left).
	PaymentPaid PaymentStatus = "Paid"
	// PaymentFailed: the invoice stays (or becomes again) open; a payment
	// booked for the same GoCardless payment is reversed.
	PaymentFailed PaymentStatus = "Failed"
	// PaymentChargedBack is a failure after collection: the booked payment
	// is reversed.
	PaymentChargedBack PaymentStatus = "ChargedBack"
	// PaymentCancelled: the collection will not happen; as PaymentFailed.
	PaymentCancelled PaymentStatus = "Cancelled"
	// PaymentReinstated: the payer's bank cancelled its charge-back
	// (GoCardless chargeback_cancelled), so the collected amount the
	// charge-back reversed is booked again, as PaymentPaid books it.
	PaymentReinstated PaymentStatus = "Reinstated"
)

var paymentStatuses = []PaymentStatus{PaymentPaid, PaymentFailed, PaymentChargedBack, PaymentCancelled, PaymentReinstated}

// books reports whether a payment status books the collected amount
// (rather than reversing what was booked).
func (s PaymentStatus) books() bool { return s == PaymentPaid || s == PaymentReinstated }

// PaymentOutcome is a collection result to post against an invoice.
type PaymentOutcome struct {
	// OutcomeID is the idempotency key and the IFS posting reference.
	OutcomeID string
	Company   string
	InvoiceID string
	// CustomerID is the invoice's customer (Identity); empty means the
	// writer takes it from the invoice.
	CustomerID string
	Status     PaymentStatus
	// PaymentID is the GoCardless payment (PM…). A PaymentPaid for a
	// payment already booked on the invoice and not reversed (confirmed,
	// then paid out) books nothing more.
	PaymentID string
	PayoutID  string
	// Amount is the collected amount as a decimal string in Currency;
	// required for PaymentPaid.
	Amount   string
	Currency string
	// Date is the value date, YYYY-MM-DD.
	Date        string
	Cause       string
	ReasonCode  string
	Description string
}

// MandateStatus is a GoCardless mandate status as IFS records it.
type MandateStatus string

// The mandate statuses IFS accepts.
const (
	MandatePending          MandateStatus = "pending"
	MandateActive           MandateStatus = "active"
	MandateSuspendedByPayer MandateStatus = "suspended_by_payer"
	MandateFailed           MandateStatus = "failed"
	MandateCancelled        MandateStatus = "cancelled"
	MandateExpired          MandateStatus = "expired"
	MandateConsumed         MandateStatus = "consumed"
	MandateBlocked          MandateStatus = "blocked"
)

var mandateStatuses = []MandateStatus{MandatePending, MandateActive, MandateSuspendedByPayer,
	MandateFailed, MandateCancelled, MandateExpired, MandateConsumed, MandateBlocked}

// MandateOutcome is a mandate status change to record on a customer. IFS
// keeps the status with the latest OccurredAt, so outcomes may arrive in
// any order.
type MandateOutcome struct {
	OutcomeID   string
	Company     string
	CustomerID  string
	MandateID   string
	Status      MandateStatus
	Scheme      string
	OccurredAt  time.Time
	Cause       string
	ReasonCode  string
	Description string
}

// RefundStatus is what happened to a refund.
type RefundStatus string

const (
	// RefundPaid: the money reached the payer.
	RefundPaid RefundStatus = "Paid"
	// RefundFailed: it did not, or came back; a repayment booked for it is
	// reversed.
	RefundFailed RefundStatus = "Failed"
	// RefundCancelled: it was never made; as RefundFailed.
	RefundCancelled RefundStatus = "Cancelled"
)

// RefundOutcome is a refund result to post.
type RefundOutcome struct {
	OutcomeID string
	Company   string
	// InvoiceID is the invoice whose payment was refunded; its customer is
	// the payee.
	InvoiceID string
	// RefundDoc is the ERP's refund id: a credit note's invoice id, when
	// it is one, is what the repayment is matched to.
	RefundDoc  string
	CustomerID string
	Status     RefundStatus
	// RefundID is the GoCardless refund (RF…), the repayment's reference.
	RefundID    string
	PaymentID   string
	Amount      string
	Currency    string
	Date        string
	Cause       string
	ReasonCode  string
	Description string
}

// Posting identifies what IFS recorded.
type Posting struct {
	// Reference is IFS's id of what was written: "MP <company>/<mixed
	// payment id>" for a mixed payment, the file name for a camt.054 file,
	// the LogId of a legacy mandate log entry.
	Reference string
	// AlreadyPosted is true when nothing was written now because the
	// outcome (or, for PaymentPaid, the payment) had been posted before.
	AlreadyPosted bool
	// NothingToPost is true when IFS needs no entry: a failure of a
	// payment that was never booked leaves the invoice open as it is; a
	// mandate status under mandate_writeback "none".
	NothingToPost bool
	// PostedAt is when it was written; zero when IFS did not say.
	PostedAt time.Time
}

// PostPayment posts a collection outcome against its invoice.
func (w *Writer) PostPayment(ctx context.Context, o PaymentOutcome) (Posting, error) {
	if err := w.checkPayment(o); err != nil {
		return Posting{}, fmt.Errorf("ifs post payment outcome %q: %w", o.OutcomeID, err)
	}
	if w.c.s.ReceiptOn == ReceiptOnPayout {
		// The payout books it, with its charge-backs and failures (PostPayout).
		return Posting{NothingToPost: true}, nil
	}
	key := o.PaymentID
	if key == "" {
		key = o.OutcomeID
	}
	p, err := w.dispatch(o.Company, key,
		func() (Posting, error) { return w.mixedPayment(ctx, o) },
		func() (Posting, error) { return w.camtPayment(ctx, o) })
	if err != nil {
		return Posting{}, fmt.Errorf("ifs post payment outcome %q on invoice %s/%s: %w", o.OutcomeID, o.Company, o.InvoiceID, err)
	}
	return p, nil
}

// PostRefund posts a refund outcome.
func (w *Writer) PostRefund(ctx context.Context, o RefundOutcome) (Posting, error) {
	if err := w.checkRefund(o); err != nil {
		return Posting{}, fmt.Errorf("ifs post refund outcome %q: %w", o.OutcomeID, err)
	}
	if w.c.s.ReceiptOn == ReceiptOnPayout {
		// The payout that takes the refund out of the balance books it.
		return Posting{NothingToPost: true}, nil
	}
	p, err := w.dispatch(o.Company, o.RefundID,
		func() (Posting, error) { return w.mixedRefund(ctx, o) },
		func() (Posting, error) { return w.camtRefund(ctx, o) })
	if err != nil {
		return Posting{}, fmt.Errorf("ifs post refund outcome %q of invoice %s/%s: %w", o.OutcomeID, o.Company, o.InvoiceID, err)
	}
	return p, nil
}

// dispatch runs the connection's write-back preset under the lock of one
// company's GoCardless id.
func (w *Writer) dispatch(company, id string, mixed, camt func() (Posting, error)) (Posting, error) {
	defer w.lock(company, id)()
	if w.c.s.Writeback == WritebackCamt054 {
		return camt()
	}
	return mixed()
}

// PostMandateStatus records a mandate status on the customer. Standard
// IFS has no entity for a GoCardless mandate's status, so under
// mandate_writeback "none" (the default) there is nothing to post; under
// "legacy_mandate_log" it calls ml-connector's own mandate action, which a
// site must have built.
func (w *Writer) PostMandateStatus(ctx context.Context, o MandateOutcome) (Posting, error) {
	if err := w.checkMandate(o); err != nil {
		return Posting{}, fmt.Errorf("ifs post mandate outcome %q: %w", o.OutcomeID, err)
	}
	if w.c.s.MandateWriteback != MandateLegacyLog {
		return Posting{NothingToPost: true}, nil
	}
	cu := w.c.s.Customers
	pred := "(" + cu.Fields[FieldKey] + "=" + keyLit(o.CustomerID, cu.KeyNumeric) + ")"
	params := mandateParams{
		Reference: o.OutcomeID, Company: o.Company, MandateID: o.MandateID, Status: string(o.Status),
		Scheme: o.Scheme, EventTime: timeLit(o.OccurredAt),
		Cause: o.Cause, ReasonCode: o.ReasonCode, Description: o.Description,
	}
	lookup := func(ctx context.Context) (Posting, bool, error) {
		return w.find(ctx, cu.Projection, w.c.s.MandateLogEntitySet,
			"Company eq "+stringLit(o.Company)+" and Reference eq "+stringLit(o.OutcomeID), "LogId")
	}
	p, err := w.write(ctx, cu, pred, lookup, w.c.s.MandateAction, params, "LogId")
	if err != nil {
		return Posting{}, fmt.Errorf("ifs post mandate outcome %q on customer %s: %w", o.OutcomeID, o.CustomerID, err)
	}
	return p, nil
}

type mandateParams struct {
	Reference   string
	Company     string
	MandateID   string `json:"MandateId"`
	Status      string
	Scheme      string
	EventTime   string
	Cause       string
	ReasonCode  string
	Description string
}

// raceBackoff spaces the attempts of a write that lost an ETag race, so
// two writers of the same entity do not collide again at once.
var raceBackoff = retry.Backoff{Base: 20 * time.Millisecond, Max: time.Second}

// write runs the read-ETag, look-up, act-with-If-Match cycle on the entity
// es(pred) until it posts, finds the posting, or fails.
func (w *Writer) write(ctx context.Context, es EntitySettings, pred string,
	lookup func(context.Context) (Posting, bool, error), action string, params any, idField string) (Posting, error) {
	var lost error
	for attempt := 1; attempt <= w.c.s.WriteAttempts; attempt++ {
		// The ETag is read before the postings: a posting made after this
		// read changes the ETag, so it cannot slip between look-up and write.
		ent, err := w.c.entity(ctx, es.Projection, es.EntitySet, pred, es.Fields[FieldKey])
		if err != nil {
			return Posting{}, err
		}
		etag := ent.etag()
		if etag == "" {
			return Posting{}, fmt.Errorf("%s%s has no ETag: %w", es.EntitySet, pred, ErrInvalid)
		}
		if p, found, err := lookup(ctx); err != nil || found {
			return p, err
		}
		res, err := w.c.invoke(ctx, es.Projection, es.EntitySet, pred, action, etag, params)
		switch {
		case err == nil:
			return posting(res, idField, false)
		case errors.Is(err, ErrConflict):
			lost = err
			if err := retry.Sleep(ctx, raceBackoff.Delay(attempt-1)); err != nil {
				return Posting{}, err
			}
		case errors.Is(err, ErrInvalid):
			// A writer that raced us without If-Match protection (or an IFS
			// refusing a reference it already has) would be told the
			// reference exists: that is success, not an error.
			if p, found, lerr := lookup(ctx); lerr == nil && found {
				return p, nil
			}
			return Posting{}, err
		default:
			return Posting{}, err
		}
	}
	return Posting{}, fmt.Errorf("lost the ETag race %d times: %w", w.c.s.WriteAttempts, lost)
}

// find looks for an existing posting.
func (w *Writer) find(ctx context.Context, projection, set, filter, idField string) (Posting, bool, error) {
	rows, err := w.c.query(ctx, projection, set, filter, idField+",CreatedAt")
	if err != nil || len(rows) == 0 {
		return Posting{}, false, err
	}
	p, err := posting(rows[0], idField, true)
	return p, err == nil, err
}

func posting(r row, idField string, already bool) (Posting, error) {
	ref, err := r.text(idField)
	if err == nil && ref == "" {
		err = fmt.Errorf("answer has no %s", idField)
	}
	if err != nil {
		return Posting{}, fmt.Errorf("ifs posting: %w", err)
	}
	at, err := r.instant("CreatedAt")
	if err != nil {
		return Posting{}, fmt.Errorf("ifs posting %s: %w", ref, err)
	}
	return Posting{Reference: ref, AlreadyPosted: already, PostedAt: at}, nil
}

func (w *Writer) checkCompany(company string) error {
	if !slices.Contains(w.c.s.CompanyCodes, company) {
		return fmt.Errorf("company %q is not one of the connection's: %w", company, ErrNotFound)
	}
	return nil
}

func (w *Writer) checkPayment(o PaymentOutcome) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if strings.TrimSpace(o.OutcomeID) == "" {
		bad("outcome id is empty")
	}
	if o.InvoiceID == "" || (w.c.s.Invoices.KeyNumeric && !numericKey.MatchString(o.InvoiceID)) {
		bad("invoice id %q is not an IFS invoice id", o.InvoiceID)
	}
	if !slices.Contains(paymentStatuses, o.Status) {
		bad("unknown payment status %q", o.Status)
	}
	if o.Status.books() {
		if !positive(o.Amount) {
			bad("amount %q is not a positive decimal", o.Amount)
		}
		if !currencyCode.MatchString(o.Currency) {
			bad("currency %q is not an ISO 4217 code", o.Currency)
		}
	}
	if _, err := time.Parse(time.DateOnly, o.Date); err != nil {
		bad("date %q is not YYYY-MM-DD", o.Date)
	}
	if len(o.PaymentID) > 50 || len(o.CustomerID) > 20 {
		bad("payment id or customer id too long")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	return w.checkCompany(o.Company)
}

func positive(amount string) bool {
	return decimalText.MatchString(amount) && !strings.HasPrefix(amount, "-") && strings.Trim(amount, "0.") != ""
}

func (w *Writer) checkRefund(o RefundOutcome) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if strings.TrimSpace(o.OutcomeID) == "" {
		bad("outcome id is empty")
	}
	if o.InvoiceID == "" || (w.c.s.Invoices.KeyNumeric && !numericKey.MatchString(o.InvoiceID)) {
		bad("invoice id %q is not an IFS invoice id", o.InvoiceID)
	}
	switch o.Status {
	case RefundPaid, RefundFailed, RefundCancelled:
	default:
		bad("unknown refund status %q", o.Status)
	}
	if o.RefundID == "" || len(o.RefundID) > 50 {
		bad("GoCardless refund id %q is empty or too long", o.RefundID)
	}
	if !positive(o.Amount) {
		bad("amount %q is not a positive decimal", o.Amount)
	}
	if !currencyCode.MatchString(o.Currency) {
		bad("currency %q is not an ISO 4217 code", o.Currency)
	}
	if _, err := time.Parse(time.DateOnly, o.Date); err != nil {
		bad("date %q is not YYYY-MM-DD", o.Date)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	return w.checkCompany(o.Company)
}

func (w *Writer) checkMandate(o MandateOutcome) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if strings.TrimSpace(o.OutcomeID) == "" {
		bad("outcome id is empty")
	}
	if o.CustomerID == "" || (w.c.s.Customers.KeyNumeric && !numericKey.MatchString(o.CustomerID)) {
		bad("customer id %q is not an IFS customer id", o.CustomerID)
	}
	if o.MandateID == "" {
		bad("mandate id is empty")
	}
	if !slices.Contains(mandateStatuses, o.Status) {
		bad("unknown mandate status %q", o.Status)
	}
	if o.OccurredAt.IsZero() {
		bad("occurred-at time is missing")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	return w.checkCompany(o.Company)
}
