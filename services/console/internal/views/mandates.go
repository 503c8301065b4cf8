package views

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/ml-connector/ml-connector/platform/money"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
)

// MandateRequest is a customer asked for a mandate through a GoCardless
// billing request, as AR sees it: the link the payer must open, when it
// was asked for and resent, whether GoCardless emailed it, and the
// invoices that wait on it.
type MandateRequest struct {
	ID               int64      `json:"id"`
	ERP              string     `json:"erp"`
	Connection       string     `json:"connection"`
	Company          string     `json:"company"`
	CustomerID       string     `json:"erp_customer_id"`
	GoCardless       string     `json:"gocardless_connection"`
	GCCustomerID     string     `json:"gc_customer_id"`
	BillingRequestID string     `json:"billing_request_id,omitempty"`
	Attempt          int        `json:"attempt"`
	Currency         string     `json:"currency"`
	State            string     `json:"state"`
	AuthorisationURL string     `json:"authorisation_url,omitempty"`
	LinkExpiresAt    *time.Time `json:"link_expires_at"`
	// LinkExpired: the payer can no longer use the link (its flow
	// expired), though the request still waits; a resend gives a new one.
	LinkExpired bool `json:"link_expired"`
	// AskedAt is when the request was made (by the orchestrator, or by the
	// resend that opened this attempt).
	AskedAt time.Time `json:"asked_at"`
	// Notified is what came of asking GoCardless to email the payer:
	// "sent", "refused: …", or "" when it was not asked (AR sends the link).
	Notified string  `json:"notified"`
	Resent   *Resend `json:"last_resent"`
	// Latest is false when a later attempt replaced this one.
	Latest    bool             `json:"latest"`
	CanResend bool             `json:"can_resend"`
	Invoices  []WaitingInvoice `json:"waiting_invoices"`
	Totals    []Amount         `json:"waiting_totals"`
}

// TotalText is what the waiting invoices add up to, per currency.
func (m MandateRequest) TotalText() string { return Join(m.Totals) }

// Resend is the last time someone gave the payer a new link.
type Resend struct {
	At time.Time `json:"at"`
	By string    `json:"by"`
}

// WaitingInvoice is an invoice parked until its customer authorises the
// mandate.
type WaitingInvoice struct {
	Document string    `json:"document"`
	Amount   *Amount   `json:"amount,omitempty"`
	Written  string    `json:"amount_as_sent"` // the ERP's decimal, shown when it is not a valid amount
	Currency string    `json:"currency"`
	ParkedAt time.Time `json:"parked_at"`
}

// MandateStates are the choices of the mandates page's filter: waiting
// (requesting or awaiting the payer) and each final state.
var MandateStates = []string{"waiting", "cancelled", "expired", "fulfilled", "all"}

// Bounds of the mandates page: requests listed, and parked invoices read
// to find those waiting on them.
const (
	maxMandateRows = 1000
	maxParked      = 20000
)

// mandatesSQL lists the requests in states $1 (all when empty), oldest
// first, with their connections' names, the last resend and who made it
// (from the audit log of the customer's mandate requests, as the ledger
// keys it: one index range per resent row) and whether a later attempt
// replaced it.
const mandatesSQL = `
	SELECT m.id, m.erp, e.name, m.company, m.erp_customer_id, g.name, m.gc_customer_id, coalesce(m.billing_request_id, ''),
	       m.attempt, m.currency, m.state, coalesce(m.authorisation_url, ''), m.flow_expires_at, coalesce(m.notified, ''),
	       m.created_at, m.resent_at, coalesce(r.actor, ''),
	       NOT EXISTS (SELECT 1 FROM mandate_requests n WHERE n.connection_id = m.connection_id AND n.company = m.company
	                   AND n.erp_customer_id = m.erp_customer_id AND n.attempt > m.attempt) AS latest
	FROM mandate_requests m
	JOIN connections e ON e.id = m.connection_id
	JOIN connections g ON g.id = m.gc_connection_id
	LEFT JOIN LATERAL (SELECT a.actor FROM audit_log a
	     WHERE m.resent_at IS NOT NULL AND a.aggregate_type = 'mandate_request'
	       AND a.aggregate_id = m.erp || ':' || m.connection_id || ':' || m.company || ':' || m.erp_customer_id
	       AND a.action = 'mandate_request.resent' AND a.payload::jsonb #>> '{after,request}' = m.id::text
	     ORDER BY a.seq DESC LIMIT 1) r ON true
	WHERE cardinality($1::text[]) = 0 OR m.state = ANY($1)
	ORDER BY m.created_at, m.id
	LIMIT $2`

// Mandates lists the mandate requests in state (one of MandateStates;
// "" is waiting) with the invoices waiting on each, and whether the list
// was cut at its bound.
func (v *Views) Mandates(ctx context.Context, state string, now time.Time) ([]MandateRequest, bool, error) {
	var states []string
	switch state {
	case "", "waiting":
		states = []string{"requesting", "awaiting_payer"}
	case "all":
		states = []string{}
	case "cancelled", "expired", "fulfilled":
		states = []string{state}
	default:
		return nil, false, fmt.Errorf("state %q: want one of %s", state, strings.Join(MandateStates, ", "))
	}
	rows, err := v.db.Query(ctx, mandatesSQL, states, maxMandateRows+1)
	if err != nil {
		return nil, false, fmt.Errorf("mandate requests: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (MandateRequest, error) {
		var m MandateRequest
		var resentAt *time.Time
		var resentBy string
		err := r.Scan(&m.ID, &m.ERP, &m.Connection, &m.Company, &m.CustomerID, &m.GoCardless, &m.GCCustomerID, &m.BillingRequestID,
			&m.Attempt, &m.Currency, &m.State, &m.AuthorisationURL, &m.LinkExpiresAt, &m.Notified, &m.AskedAt, &resentAt, &resentBy, &m.Latest)
		if resentAt != nil {
			m.Resent = &Resend{At: *resentAt, By: resentBy}
		}
		m.LinkExpired = m.State == "awaiting_payer" && m.LinkExpiresAt != nil && now.After(*m.LinkExpiresAt)
		// As operator.ResendMandateRequest allows: not while the request
		// is being made, nor once fulfilled, nor for a replaced attempt.
		m.CanResend = m.Latest && (m.State == "awaiting_payer" || m.State == "cancelled" || m.State == "expired")
		m.Invoices, m.Totals = []WaitingInvoice{}, []Amount{}
		return m, err
	})
	if err != nil {
		return nil, false, fmt.Errorf("mandate requests: %w", err)
	}
	cut := len(list) > maxMandateRows
	if cut {
		list = list[:maxMandateRows]
	}
	if len(list) == 0 {
		return list, cut, nil
	}
	waiting, err := v.parkedInvoices(ctx)
	if err != nil {
		return nil, false, err
	}
	for i := range list {
		m := &list[i]
		if !m.Latest {
			continue // the invoices wait on the customer's latest request
		}
		m.Invoices = waiting[customerOf(m.Connection, m.Company, m.CustomerID)]
		if m.Invoices == nil {
			m.Invoices = []WaitingInvoice{}
		}
		var amounts []Amount
		for _, inv := range m.Invoices {
			if inv.Amount != nil {
				amounts = append(amounts, *inv.Amount)
			}
		}
		if m.Totals, err = Sum(amounts); err != nil {
			return nil, false, err
		}
	}
	return list, cut, nil
}

func customerOf(connection, company, customer string) string {
	return connection + "\x00" + company + "\x00" + customer
}

// parkedInvoices reads the invoices parked for a mandate (at most
// maxParked, oldest first) by customer. The customer is only in the
// parked InvoiceReady message, so the messages are read and decoded.
func (v *Views) parkedInvoices(ctx context.Context) (map[string][]WaitingInvoice, error) {
	rows, err := v.db.Query(ctx, `SELECT aggregate_id, message, parked_at FROM awaiting_invoices WHERE released_at IS NULL ORDER BY id LIMIT $1`, maxParked)
	if err != nil {
		return nil, fmt.Errorf("parked invoices: %w", err)
	}
	defer rows.Close()
	out := map[string][]WaitingInvoice{}
	for rows.Next() {
		var aggID string
		var data []byte
		var inv WaitingInvoice
		if err := rows.Scan(&aggID, &data, &inv.ParkedAt); err != nil {
			return nil, fmt.Errorf("parked invoices: %w", err)
		}
		var m mlcv1.InvoiceReady
		if err := proto.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("parked invoice: %w", err)
		}
		inv.Document, inv.Written, inv.Currency = parkedDocument(aggID, m.GetErp().GetConnection(), m.GetErp().GetCompany()), m.GetAmount(), m.GetCurrency()
		if minor, err := money.ToMinor(m.GetAmount(), m.GetCurrency()); err == nil {
			a := NewAmount(minor, m.GetCurrency())
			inv.Amount = &a
		}
		k := customerOf(m.GetErp().GetConnection(), m.GetErp().GetCompany(), m.GetCustomerId())
		out[k] = append(out[k], inv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("parked invoices: %w", err)
	}
	return out, nil
}

// parkedKey is the ledger's invoice identity, erp:connection-id:company:,
// which the orchestrator parks invoices under (migration 00014; rows
// parked before it were keyed connection-name:company:).
var parkedKey = regexp.MustCompile(`^(?:ifs|jde):[0-9]+:`)

// parkedDocument is the document of a parked invoice's aggregate id.
func parkedDocument(aggID, connection, company string) string {
	if loc := parkedKey.FindStringIndex(aggID); loc != nil {
		return strings.TrimPrefix(aggID[loc[1]:], company+":")
	}
	return strings.TrimPrefix(aggID, connection+":"+company+":")
}
