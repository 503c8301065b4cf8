package web

import (
	"errors"
	"net/http"

	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/services/console/internal/views"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/operator"
)

// collectionData is the collection page: the collection, what surrounds
// it, and its audit timeline with the verification of every chain.
type collectionData struct {
	Collection   collectionJSON      `json:"collection"`
	Surroundings views.Surroundings  `json:"surroundings"`
	Timeline     []views.Event       `json:"timeline"`
	Chains       []views.Chain       `json:"audit_chains"`
	Verified     bool                `json:"audit_verified"`
	Signed       bool                `json:"audit_macs_checked"`
	Open         []views.Item        `json:"open_exceptions"`
	Amount       views.Amount        `json:"-"`
	CanAct       bool                `json:"-"`
	Back         string              `json:"-"`
	Replayable   bool                `json:"-"`
	OpenRef      string              `json:"-"`
	Ledger       operator.Collection `json:"-"`
}

// collectionJSON is a collection under its stable JSON names.
type collectionJSON struct {
	ID            int64        `json:"id"`
	ERP           string       `json:"erp"`
	Connection    string       `json:"connection"`
	Company       string       `json:"company"`
	InvoiceID     string       `json:"invoice_id"`
	InvoiceNo     string       `json:"invoice_no"`
	CustomerID    string       `json:"customer_id"`
	Kind          string       `json:"kind"`
	Amount        views.Amount `json:"amount"`
	State         string       `json:"state"`
	Attempts      int          `json:"attempts"`
	GCPayment     string       `json:"gc_payment_id,omitempty"`
	GCSubcription string       `json:"gc_subscription_id,omitempty"`
	ChargeDate    string       `json:"charge_date,omitempty"`
	FailureCause  string       `json:"failure_cause,omitempty"`
	ReasonCode    string       `json:"failure_reason_code,omitempty"`
	Description   string       `json:"failure_description,omitempty"`
}

func (s *Server) collection(w http.ResponseWriter, r *http.Request) {
	conn, company, doc := r.PathValue("connection"), r.PathValue("company"), r.PathValue("document")
	if len(conn) > 200 || len(company) > 200 || len(doc) > 500 {
		s.problem(w, r, http.StatusBadRequest, "that address is too long to be a document")
		return
	}
	col, err := s.desk.Show(r.Context(), conn, company, doc)
	if errors.Is(err, operator.ErrNotFound) || errors.Is(err, connections.ErrNotFound) {
		s.problem(w, r, http.StatusNotFound, "no collection for document "+doc+" of company "+company+" in "+conn)
		return
	}
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	d := collectionData{Ledger: col, Amount: views.NewAmount(col.AmountMinor, col.Currency), Back: r.URL.RequestURI(),
		CanAct: who(r).user.Role.Allows("operator")}
	d.Collection = collectionJSON{ID: col.ID, ERP: col.ERP, Connection: col.Connection, Company: col.Company,
		InvoiceID: col.InvoiceID, InvoiceNo: col.InvoiceNo, CustomerID: col.CustomerID, Kind: col.Kind, Amount: d.Amount,
		State: col.State, Attempts: col.Attempts, GCPayment: col.PaymentID, GCSubcription: col.Subscription,
		ChargeDate: col.ChargeDate, FailureCause: col.FailureCause, ReasonCode: col.ReasonCode, Description: col.Description}
	if d.Surroundings, err = s.views.Surround(r.Context(), col.ID); err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	ledgerID := ""
	if len(col.AuditTrail) > 0 {
		ledgerID = col.AuditTrail[0].AggregateID
	}
	aggs := [][2]string{{"invoice", conn + ":" + company + ":" + doc}}
	if ledgerID != "" {
		aggs = append([][2]string{{"collection", ledgerID}}, aggs...)
	}
	if d.Timeline, d.Chains, err = s.views.Timeline(r.Context(), aggs...); err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	d.Verified = len(d.Chains) > 0
	d.Signed = d.Verified
	for _, c := range d.Chains {
		d.Verified = d.Verified && c.Verified
		d.Signed = d.Signed && c.Signed
	}
	pg, err := s.views.Queue(r.Context(), views.Filter{Connection: conn, Company: company, Document: doc, Status: "all", Limit: views.MaxPageSize})
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	d.Open = []views.Item{}
	for _, it := range pg.Items {
		if it.Document == doc && (it.Status == "open" || it.Status == "escalated") {
			d.Open = append(d.Open, it)
			d.Replayable = d.Replayable || it.Replayable
			if d.OpenRef == "" {
				d.OpenRef = it.Ref
			}
		}
	}
	s.render(w, r, http.StatusOK, "collection", "Invoice "+col.InvoiceNo, d)
}
