package poster

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/connectors/jde"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/logging"
	"github.com/ml-connector/ml-connector/platform/money"
	"github.com/ml-connector/ml-connector/platform/secrets"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
)

// posting is what an ERP answered for one outcome.
type posting struct {
	Reference string
	PostedAt  time.Time
	// Nothing is true when the ERP needs no entry for the outcome (for
	// instance a payout where receipts are booked on confirmation).
	Nothing bool
}

// erpWriter writes outcomes into one ERP connection.
type erpWriter interface {
	payment(ctx context.Context, o *mlcv1.PaymentOutcome) (posting, error)
	refund(ctx context.Context, o *mlcv1.RefundOutcome) (posting, error)
	mandate(ctx context.Context, o *mlcv1.MandateOutcome) (posting, error)
	// payout posts a validated payout (see validatePayout).
	payout(ctx context.Context, p *mlcv1.PostPayoutRequest) (payoutPosting, error)
}

// registry is the part of the connection registry used here.
type registry interface {
	Get(ctx context.Context, name string) (connections.Connection, error)
	Secrets(ctx context.Context, name string) (map[string]secrets.Value, error)
}

// Writers builds a writer per ERP connection from the registry and keeps
// it while its settings and secret are unchanged, so an ERP session (JDE
// token, IFS OAuth2 token, rate limiter, breaker) serves every posting.
type Writers struct {
	reg     registry
	ttl     time.Duration
	ifsOpts ifscloud.Options
	jdeHTTP func(cfg *jde.Config)
	// filesDir, when set, is the only tree files are written into.
	filesDir string
	mu       sync.Mutex
	writers  map[string]cachedWriter
}

type cachedWriter struct {
	w           erpWriter
	conn        connections.Connection
	fingerprint [32]byte
	checked     time.Time
	close       func()
}

// NewWriters returns writers over reg, re-reading a connection's settings
// after ttl.
func NewWriters(reg registry, ttl time.Duration) *Writers {
	return &Writers{reg: reg, ttl: ttl, writers: map[string]cachedWriter{}}
}

// ConfineFiles makes dir (ERP_FILES_DIR: the volume of
// deploy/k8s/components/erp-files, shared by every replica) the only tree
// an IFS connection's camt054 files may be written into; a connection
// whose camt054_dir lies outside it is refused as invalid settings rather
// than failing on a read-only or pod-local file system.
func (ws *Writers) ConfineFiles(dir string) { ws.filesDir = filepath.Clean(dir) }

// confined reports whether dir is ws.filesDir or below it.
func (ws *Writers) confined(dir string) bool {
	rel, err := filepath.Rel(ws.filesDir, filepath.Clean(dir))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

var errUnknownConnection = errors.New("unknown connection")

// errBadSettings: the connection's settings are refused; an operator must
// fix them (FAILED_PRECONDITION), nothing about the request is wrong.
var errBadSettings = errors.New("bad connection settings")

// For returns the writer of the named connection, which must be of kind.
func (ws *Writers) For(ctx context.Context, name string, kind connections.Kind) (erpWriter, connections.Connection, error) {
	ws.mu.Lock()
	c, ok := ws.writers[name]
	ws.mu.Unlock()
	if ok && time.Since(c.checked) < ws.ttl {
		if c.conn.Kind != kind {
			return nil, c.conn, fmt.Errorf("%w %q: it is a %s connection, not %s", errUnknownConnection, name, c.conn.Kind, kind)
		}
		return c.w, c.conn, nil
	}
	conn, err := ws.reg.Get(ctx, name)
	if errors.Is(err, connections.ErrNotFound) {
		return nil, conn, fmt.Errorf("%w %q", errUnknownConnection, name)
	}
	if err != nil {
		return nil, conn, err
	}
	if conn.Kind != kind {
		return nil, conn, fmt.Errorf("%w %q: it is a %s connection, not %s", errUnknownConnection, name, conn.Kind, kind)
	}
	vals, err := ws.reg.Secrets(ctx, name)
	if err != nil {
		return nil, conn, err
	}
	secretName := "client_secret"
	if kind == connections.KindJDE {
		secretName = "password"
	}
	secret := vals[secretName]
	fp := sha256.Sum256([]byte(fmt.Sprint(conn.Settings) + "\x00" + secret.Reveal()))
	if ok && c.fingerprint == fp {
		c.checked = time.Now()
		ws.mu.Lock()
		ws.writers[name] = c
		ws.mu.Unlock()
		return c.w, conn, nil
	}
	logging.Register(secret.Reveal())
	var w erpWriter
	var closer func()
	switch kind {
	case connections.KindIFS:
		s, err := ifscloud.ParseSettings(conn.Settings)
		if err != nil {
			return nil, conn, fmt.Errorf("%w: connection %q: %w", errBadSettings, name, err)
		}
		if s.Writeback == ifscloud.WritebackCamt054 && ws.filesDir != "" && !ws.confined(s.Camt054.Dir) {
			return nil, conn, fmt.Errorf("%w: connection %q settings: camt054_dir %s is not under ERP_FILES_DIR %s",
				ifscloud.ErrInvalid, name, s.Camt054.Dir, ws.filesDir)
		}
		client, err := ifscloud.New(name, s, secret, ws.ifsOpts)
		if err != nil {
			return nil, conn, err
		}
		w = ifsWriter{w: ifscloud.NewWriter(client)}
	case connections.KindJDE:
		s, err := jde.ParseSettings(conn.Settings)
		if err != nil {
			return nil, conn, fmt.Errorf("%w: connection %q: %w", errBadSettings, name, err)
		}
		cfg := s.ClientConfig(name, secret)
		if ws.jdeHTTP != nil {
			ws.jdeHTTP(&cfg)
		}
		client, err := jde.New(cfg)
		if err != nil {
			return nil, conn, err
		}
		w = jdeWriter{w: jde.NewWriter(client, s.Writer)}
		closer = func() { client.Close(context.Background()) }
	default:
		return nil, conn, fmt.Errorf("%w %q: %s is not an ERP", errUnknownConnection, name, kind)
	}
	ws.mu.Lock()
	if ok && c.close != nil {
		c.close()
	}
	ws.writers[name] = cachedWriter{w: w, conn: conn, fingerprint: fp, checked: time.Now(), close: closer}
	ws.mu.Unlock()
	return w, conn, nil
}

// Close ends the ERP sessions (JDE logout).
func (ws *Writers) Close() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, c := range ws.writers {
		if c.close != nil {
			c.close()
		}
	}
	ws.writers = map[string]cachedWriter{}
}

// ifsWriter adapts outcomes to the IFS writer. A payment is booked when
// it is collected (confirmed); its payout reports the same GoCardless
// payment again, which the writer finds booked (or books, had the
// confirmation been missed).
type ifsWriter struct{ w *ifscloud.Writer }

func (iw ifsWriter) payment(ctx context.Context, o *mlcv1.PaymentOutcome) (posting, error) {
	var status ifscloud.PaymentStatus
	switch o.GetKind() {
	case mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CONFIRMED, mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_PAID_OUT:
		status = ifscloud.PaymentPaid
	case mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_FAILED:
		status = ifscloud.PaymentFailed
	case mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CHARGED_BACK:
		status = ifscloud.PaymentChargedBack
	case mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CANCELLED:
		status = ifscloud.PaymentCancelled
	case mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CHARGEBACK_CANCELLED:
		status = ifscloud.PaymentReinstated
	default:
		return posting{}, fmt.Errorf("%w: payment outcome kind %v", errInvalid, o.GetKind())
	}
	amount, err := money.FromMinor(o.GetAmountMinor(), o.GetCurrency())
	if err != nil {
		return posting{}, fmt.Errorf("%w: %v", errInvalid, err)
	}
	p, err := iw.w.PostPayment(ctx, ifscloud.PaymentOutcome{
		OutcomeID: o.GetOutcomeId(), Company: o.GetErp().GetCompany(), InvoiceID: o.GetInvoice().GetInvoiceId(),
		CustomerID: o.GetCustomerId(), Status: status, PaymentID: o.GetPaymentId(), PayoutID: o.GetPayoutId(), Amount: amount,
		Currency: o.GetCurrency(), Date: o.GetOccurredAt().AsTime().UTC().Format(time.DateOnly), Cause: o.GetCause(),
		ReasonCode: o.GetReasonCode(), Description: o.GetDescription(),
	})
	return posting{Reference: p.Reference, PostedAt: p.PostedAt, Nothing: p.NothingToPost}, err
}

// refund: a paid refund is a repayment to the customer in IFS; a refund
// that failed or came back reverses it.
func (iw ifsWriter) refund(ctx context.Context, o *mlcv1.RefundOutcome) (posting, error) {
	kinds := map[mlcv1.RefundOutcomeKind]ifscloud.RefundStatus{
		mlcv1.RefundOutcomeKind_REFUND_OUTCOME_KIND_PAID:      ifscloud.RefundPaid,
		mlcv1.RefundOutcomeKind_REFUND_OUTCOME_KIND_FAILED:    ifscloud.RefundFailed,
		mlcv1.RefundOutcomeKind_REFUND_OUTCOME_KIND_CANCELLED: ifscloud.RefundCancelled,
	}
	status, ok := kinds[o.GetKind()]
	if !ok {
		return posting{}, fmt.Errorf("%w: refund outcome kind %v", errInvalid, o.GetKind())
	}
	amount, err := money.FromMinor(o.GetAmountMinor(), o.GetCurrency())
	if err != nil {
		return posting{}, fmt.Errorf("%w: %v", errInvalid, err)
	}
	p, err := iw.w.PostRefund(ctx, ifscloud.RefundOutcome{
		OutcomeID: o.GetOutcomeId(), Company: o.GetErp().GetCompany(), InvoiceID: o.GetInvoice().GetInvoiceId(),
		RefundDoc: o.GetRefundId(), CustomerID: o.GetCustomerId(), Status: status, RefundID: o.GetGocardlessRefundId(),
		PaymentID: o.GetPaymentId(), Amount: amount, Currency: o.GetCurrency(),
		Date: o.GetOccurredAt().AsTime().UTC().Format(time.DateOnly), Cause: o.GetCause(), ReasonCode: o.GetReasonCode(),
		Description: o.GetDescription(),
	})
	return posting{Reference: p.Reference, PostedAt: p.PostedAt, Nothing: p.NothingToPost}, err
}

func (iw ifsWriter) mandate(ctx context.Context, o *mlcv1.MandateOutcome) (posting, error) {
	status, ok := mandateStatus[o.GetStatus()]
	if !ok {
		return posting{}, fmt.Errorf("%w: mandate status %v", errInvalid, o.GetStatus())
	}
	p, err := iw.w.PostMandateStatus(ctx, ifscloud.MandateOutcome{
		OutcomeID: o.GetOutcomeId(), Company: o.GetErp().GetCompany(), CustomerID: o.GetCustomerId(),
		MandateID: o.GetMandateId(), Status: ifscloud.MandateStatus(status), Scheme: o.GetScheme(),
		OccurredAt: o.GetOccurredAt().AsTime(), Cause: o.GetCause(), ReasonCode: o.GetReasonCode(), Description: o.GetDescription(),
	})
	return posting{Reference: p.Reference, PostedAt: p.PostedAt, Nothing: p.NothingToPost}, err
}

var mandateStatus = map[mlcv1.MandateStatus]string{
	mlcv1.MandateStatus_MANDATE_STATUS_PENDING:            "pending",
	mlcv1.MandateStatus_MANDATE_STATUS_ACTIVE:             "active",
	mlcv1.MandateStatus_MANDATE_STATUS_SUSPENDED_BY_PAYER: "suspended_by_payer",
	mlcv1.MandateStatus_MANDATE_STATUS_FAILED:             "failed",
	mlcv1.MandateStatus_MANDATE_STATUS_CANCELLED:          "cancelled",
	mlcv1.MandateStatus_MANDATE_STATUS_EXPIRED:            "expired",
	mlcv1.MandateStatus_MANDATE_STATUS_CONSUMED:           "consumed",
	mlcv1.MandateStatus_MANDATE_STATUS_BLOCKED:            "blocked",
}

// jdeWriter adapts outcomes to the JDE writer.
type jdeWriter struct{ w *jde.Writer }

// document reads a JDE document key from an invoice key: the ledger keeps
// pay items as "DOC/DCT/SFX".
func document(company string, k *mlcv1.InvoiceKey) (jde.DocumentKey, error) {
	id := k.GetInvoiceId()
	if !strings.Contains(id, "/") {
		id = id + "/" + k.GetDocType() + "/" + k.GetSuffix()
	}
	dk, err := jde.ParseDocumentKey(company, id)
	if err != nil {
		return dk, fmt.Errorf("%w: %v", errInvalid, err)
	}
	return dk, nil
}

func (jw jdeWriter) payment(ctx context.Context, o *mlcv1.PaymentOutcome) (posting, error) {
	kinds := map[mlcv1.PaymentOutcomeKind]jde.PaymentKind{
		mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CONFIRMED:            jde.PaymentConfirmed,
		mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_PAID_OUT:             jde.PaymentPaidOut,
		mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_FAILED:               jde.PaymentFailed,
		mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CHARGED_BACK:         jde.PaymentChargedBack,
		mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CANCELLED:            jde.PaymentCancelled,
		mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CHARGEBACK_CANCELLED: jde.PaymentReinstated,
	}
	kind, ok := kinds[o.GetKind()]
	if !ok {
		return posting{}, fmt.Errorf("%w: payment outcome kind %v", errInvalid, o.GetKind())
	}
	doc, err := document(o.GetErp().GetCompany(), o.GetInvoice())
	if err != nil {
		return posting{}, err
	}
	r, err := jw.w.PostPayment(ctx, jde.Payment{
		OutcomeID: o.GetOutcomeId(), Kind: kind, Invoice: doc, Customer: o.GetCustomerId(), BusinessUnit: o.GetBusinessUnit(),
		PaymentID: o.GetPaymentId(), PayoutID: o.GetPayoutId(), AmountMinor: o.GetAmountMinor(), Currency: o.GetCurrency(),
		OccurredAt: o.GetOccurredAt().AsTime(), Cause: o.GetCause(), ReasonCode: o.GetReasonCode(), Description: o.GetDescription(),
	})
	return posting{Reference: r.Reference, PostedAt: r.PostedAt, Nothing: r.NothingToPost}, err
}

func (jw jdeWriter) refund(ctx context.Context, o *mlcv1.RefundOutcome) (posting, error) {
	kinds := map[mlcv1.RefundOutcomeKind]jde.RefundKind{
		mlcv1.RefundOutcomeKind_REFUND_OUTCOME_KIND_PAID:      jde.RefundPaid,
		mlcv1.RefundOutcomeKind_REFUND_OUTCOME_KIND_FAILED:    jde.RefundFailed,
		mlcv1.RefundOutcomeKind_REFUND_OUTCOME_KIND_CANCELLED: jde.RefundCancelled,
	}
	kind, ok := kinds[o.GetKind()]
	if !ok {
		return posting{}, fmt.Errorf("%w: refund outcome kind %v", errInvalid, o.GetKind())
	}
	refundDoc, err := jde.ParseDocumentKey(o.GetErp().GetCompany(), o.GetRefundId())
	if err != nil {
		return posting{}, fmt.Errorf("%w: refund id: %v", errInvalid, err)
	}
	invoice, err := document(o.GetErp().GetCompany(), o.GetInvoice())
	if err != nil {
		return posting{}, err
	}
	r, err := jw.w.PostRefund(ctx, jde.Refund{
		OutcomeID: o.GetOutcomeId(), Kind: kind, Refund: refundDoc, Invoice: invoice, Customer: o.GetCustomerId(),
		RefundID: o.GetGocardlessRefundId(), PaymentID: o.GetPaymentId(), AmountMinor: o.GetAmountMinor(), Currency: o.GetCurrency(),
		OccurredAt: o.GetOccurredAt().AsTime(), Cause: o.GetCause(), ReasonCode: o.GetReasonCode(), Description: o.GetDescription(),
	})
	return posting{Reference: r.Reference, PostedAt: r.PostedAt, Nothing: r.NothingToPost}, err
}

func (jw jdeWriter) mandate(ctx context.Context, o *mlcv1.MandateOutcome) (posting, error) {
	status, ok := mandateStatus[o.GetStatus()]
	if !ok {
		return posting{}, fmt.Errorf("%w: mandate status %v", errInvalid, o.GetStatus())
	}
	m := jde.Mandate{
		OutcomeID: o.GetOutcomeId(), Company: o.GetErp().GetCompany(), Customer: o.GetCustomerId(), MandateID: o.GetMandateId(),
		Status: status, Scheme: o.GetScheme(), OccurredAt: o.GetOccurredAt().AsTime(), Cause: o.GetCause(),
		ReasonCode: o.GetReasonCode(), Description: o.GetDescription(), AuthorisationURL: o.GetAuthorisationUrl(),
	}
	if o.GetAuthorisationExpiresAt() != nil {
		m.AuthorisationExpiresAt = o.GetAuthorisationExpiresAt().AsTime()
	}
	r, err := jw.w.PostMandateStatus(ctx, m)
	return posting{Reference: r.Reference, PostedAt: r.PostedAt, Nothing: r.NothingToPost}, err
}

// payoutText is the remark of a payout's entries: its bank reference, and
// its conversion when GoCardless paid it out in another currency.
func payoutText(p *mlcv1.PostPayoutRequest) string {
	text := "ref " + p.GetReference()
	if fx := p.GetFx(); fx.GetFxCurrency() != "" {
		if amount, err := money.FromMinor(fx.GetFxAmountMinor(), fx.GetFxCurrency()); err == nil {
			text += " paid as " + amount + " " + fx.GetFxCurrency()
		}
		if rate := fx.GetExchangeRate(); rate != "" {
			text += " at " + rate
		}
	}
	return text
}

// payout books the payout in IFS: amounts as decimals of its currency.
func (iw ifsWriter) payout(ctx context.Context, in *mlcv1.PostPayoutRequest) (payoutPosting, error) {
	dec := func(n int64) string { s, _ := money.FromMinor(n, in.GetCurrency()); return s }
	fees, tax := feeTotals(in)
	p := ifscloud.Payout{PayoutID: in.GetPayoutId(), Reference: in.GetReference(), Company: in.GetErp().GetCompany(),
		Date: in.GetArrivalDate(), Currency: in.GetCurrency(), Amount: dec(in.GetAmountMinor()), Fees: dec(fees), FeeTax: dec(tax),
		Text: payoutText(in)}
	for _, l := range in.GetLines() {
		p.Lines = append(p.Lines, ifscloud.PayoutLine{Kind: lineKinds[l.GetKind()],
			InvoiceID: l.GetInvoice().GetInvoiceId(), CustomerID: l.GetCustomerId(), PaymentID: l.GetPaymentId(),
			RefundID: l.GetRefundId(), RefundDoc: l.GetErpRefundId(), Amount: dec(l.GetAmountMinor())})
	}
	r, err := iw.w.PostPayout(ctx, p)
	return payoutPosting{posting: posting{Reference: r.Reference, PostedAt: r.PostedAt, Nothing: r.NothingToPost}, FeeReference: r.FeeReference}, err
}

// payout books the payout in JDE.
func (jw jdeWriter) payout(ctx context.Context, in *mlcv1.PostPayoutRequest) (payoutPosting, error) {
	date, _ := time.Parse(time.DateOnly, in.GetArrivalDate()) // validated
	fees, tax := feeTotals(in)
	company := in.GetErp().GetCompany()
	p := jde.Payout{PayoutID: in.GetPayoutId(), Reference: in.GetReference(), Company: company, ArrivalDate: date,
		Currency: in.GetCurrency(), AmountMinor: in.GetAmountMinor(), FeesMinor: fees, FeeTaxMinor: tax}
	for _, l := range in.GetLines() {
		line := jde.PayoutLine{Kind: lineKinds[l.GetKind()], Customer: l.GetCustomerId(),
			BusinessUnit: l.GetBusinessUnit(), PaymentID: l.GetPaymentId(), RefundID: l.GetRefundId(), AmountMinor: l.GetAmountMinor()}
		if l.GetInvoice().GetInvoiceId() != "" {
			doc, err := document(company, l.GetInvoice())
			if err != nil {
				return payoutPosting{}, err
			}
			line.Invoice = doc
		}
		p.Lines = append(p.Lines, line)
	}
	r, err := jw.w.PostPayout(ctx, p)
	return payoutPosting{posting: posting{Reference: r.Reference, PostedAt: r.PostedAt, Nothing: r.NothingToPost}, FeeReference: r.FeeReference}, err
}

// lister is the part of the connection registry CheckSettings reads.
type lister interface {
	ListKind(ctx context.Context, kind connections.Kind) ([]connections.Connection, error)
}

// CheckSettings parses the settings of every IFS and JD Edwards
// connection, as a posting would, and returns every refusal, naming the
// connection and the setting: run at start-up, so an operator sees a bad
// setting (a fee account of a company the connection does not serve, say)
// before the first payout fails on it.
func CheckSettings(ctx context.Context, reg lister) error {
	var errs []error
	for _, kind := range []connections.Kind{connections.KindIFS, connections.KindJDE} {
		conns, err := reg.ListKind(ctx, kind)
		if err != nil {
			return err
		}
		for _, c := range conns {
			if kind == connections.KindIFS {
				_, err = ifscloud.ParseSettings(c.Settings)
			} else {
				_, err = jde.ParseSettings(c.Settings)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%w: connection %q: %w", errBadSettings, c.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}
