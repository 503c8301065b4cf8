package jdesim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// AddInvoices adds F03B11 rows, replacing rows with the same key, stamped
// with the current time as JDE stamps every write. A row with a blank
// currency mode is completed as batch invoice entry would complete it
// (currency.go): an invoice in another currency than its company's gets
// mode F, its amounts as ACR/FAP and their domestic equivalents as AG/AAP.
// It fails, adding none, when a rate is missing.
func (s *Server) AddInvoices(invs ...Invoice) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := stampOf(s.now())
	for i := range invs {
		if err := s.completeCurrency(&invs[i]); err != nil {
			return err
		}
	}
	for _, inv := range invs {
		inv.Stamp = st
		if cur := s.findInvoice(inv.Key()); cur != nil {
			*cur = inv
			continue
		}
		s.addInvoice(&inv)
	}
	return nil
}

// UpdateInvoice changes one F03B11 row and stamps it.
func (s *Server) UpdateInvoice(k DocKey, change func(*Invoice)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv := s.findInvoice(k)
	if inv == nil {
		return fmt.Errorf("jdesim: no invoice %s", k)
	}
	change(inv)
	s.touch(&inv.Stamp)
	s.reindex()
	return nil
}

// UpdateInvoices calls change for every F03B11 row and stamps the rows for
// which it returns true, like a batch job touching many documents.
func (s *Server) UpdateInvoices(change func(*Invoice) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, inv := range s.data.invoices {
		if change(inv) {
			s.touch(&inv.Stamp)
			n++
		}
	}
	s.reindex()
	return n
}

// reindex rebuilds the key index after a change that may have moved keys.
func (s *Server) reindex() {
	clear(s.data.invoiceIndex)
	for _, inv := range s.data.invoices {
		s.data.invoiceIndex[inv.Key()] = inv
	}
}

// Invoice returns a copy of one F03B11 row.
func (s *Server) Invoice(k DocKey) (Invoice, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if inv := s.findInvoice(k); inv != nil {
		return *inv, true
	}
	return Invoice{}, false
}

// Invoices returns copies of all F03B11 rows.
func (s *Server) Invoices() []Invoice {
	return copies(s, func(d *data) []*Invoice { return d.invoices })
}

// PutCustomerMaster adds or replaces the F03012 row of (AN8, CO).
func (s *Server) PutCustomerMaster(c CustomerMaster) {
	put(s, &c, &c.Stamp, &s.data.customers, func(o *CustomerMaster) bool { return o.AN8 == c.AN8 && o.CO == c.CO })
}

// PutAddressBook adds or replaces the F0101 row of AN8.
func (s *Server) PutAddressBook(a AddressBook) {
	put(s, &a, &a.Stamp, &s.data.book, func(o *AddressBook) bool { return o.AN8 == a.AN8 })
}

// PutEmail adds or replaces the F01151 row of (AN8, IDLN, RCK7).
func (s *Server) PutEmail(e Email) {
	put(s, &e, &e.Stamp, &s.data.emails, func(o *Email) bool { return o.AN8 == e.AN8 && o.IDLN == e.IDLN && o.RCK7 == e.RCK7 })
}

// PutAddress adds or replaces the F0116 row of (AN8, EFTB).
func (s *Server) PutAddress(a Address) {
	put(s, &a, &a.Stamp, &s.data.addresses, func(o *Address) bool { return o.AN8 == a.AN8 && o.EFTB.Equal(a.EFTB) })
}

// PutBankAccount adds or replaces the F0030 row of (AN8, BKTP).
func (s *Server) PutBankAccount(b BankAccount) {
	put(s, &b, &b.Stamp, &s.data.banks, func(o *BankAccount) bool { return o.AN8 == b.AN8 && o.BKTP == b.BKTP })
}

func put[T any](s *Server, row *T, st *Stamp, rows *[]*T, same func(*T) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.touch(st)
	for i, o := range *rows {
		if same(o) {
			(*rows)[i] = row
			return
		}
	}
	*rows = append(*rows, row)
}

func copies[T any](s *Server, rows func(*data) []*T) []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := rows(&s.data)
	out := make([]T, len(src))
	for i, r := range src {
		out[i] = *r
	}
	return out
}

// Receipts returns the F03B13Z1 rows the receipt orchestration wrote.
func (s *Server) Receipts() []ReceiptInput {
	return copies(s, func(d *data) []*ReceiptInput { return d.receipts })
}

// GLEntries returns the F0911 rows the orchestrations wrote.
func (s *Server) GLEntries() []GLEntry { return copies(s, func(d *data) []*GLEntry { return d.gl }) }

// PaymentEvents returns the F5503B01 rows (failed collections).
func (s *Server) PaymentEvents() []PaymentEvent {
	return copies(s, func(d *data) []*PaymentEvent { return d.events })
}

// MandateStatuses returns the F5503B02 rows.
func (s *Server) MandateStatuses() []MandateStatus {
	return copies(s, func(d *data) []*MandateStatus { return d.mandates })
}

// RefundOutcomes returns the F5503B03 rows.
func (s *Server) RefundOutcomes() []RefundOutcome {
	return copies(s, func(d *data) []*RefundOutcome { return d.refunds })
}

// controlRoutes serves the Go controls over HTTP under /_sim/ for the
// jdesim binary. Rows are JSON with JDE's column names; amounts are the
// stored integers, dates RFC 3339.
func (s *Server) controlRoutes() {
	s.mux.HandleFunc("POST /_sim/tables/{table}", s.handlePutRows)
	s.mux.HandleFunc("GET /_sim/tables/{table}", s.handleGetRows)
	s.mux.HandleFunc("POST /_sim/restart", func(w http.ResponseWriter, _ *http.Request) {
		s.Restart()
		w.WriteHeader(http.StatusNoContent)
	})
	s.mux.HandleFunc("POST /_sim/expire-sessions", func(w http.ResponseWriter, _ *http.Request) {
		s.ExpireSessions()
		w.WriteHeader(http.StatusNoContent)
	})
	s.mux.HandleFunc("PUT /_sim/faults", s.handleFaults)
	s.mux.HandleFunc("GET /_sim/stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	s.mux.HandleFunc("DELETE /_sim/stats", func(w http.ResponseWriter, _ *http.Request) {
		s.ResetStats()
		w.WriteHeader(http.StatusNoContent)
	})
	s.mux.HandleFunc("POST /_sim/clock/advance", s.handleAdvance)
}

func decodeRows[T any](r *http.Request, put func(T)) error {
	var rows []T
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rows); err != nil {
		return err
	}
	for _, row := range rows {
		put(row)
	}
	return nil
}

func (s *Server) handlePutRows(w http.ResponseWriter, r *http.Request) {
	var err error
	switch r.PathValue("table") {
	case "F03B11":
		var invs []Invoice
		if err = decodeRows(r, func(inv Invoice) { invs = append(invs, inv) }); err == nil {
			err = s.AddInvoices(invs...)
		}
	case "F0010":
		err = decodeRows(r, s.PutCompany)
	case "F03012":
		err = decodeRows(r, s.PutCustomerMaster)
	case "F0101":
		err = decodeRows(r, s.PutAddressBook)
	case "F01151":
		err = decodeRows(r, s.PutEmail)
	case "F0116":
		err = decodeRows(r, s.PutAddress)
	case "F0030":
		err = decodeRows(r, s.PutBankAccount)
	default:
		http.Error(w, "rows can be added to F0010, F03B11, F03012, F0101, F01151, F0116 and F0030", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, "rows: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleGetRows(w http.ResponseWriter, r *http.Request) {
	var rows any
	switch r.PathValue("table") {
	case "F03B11":
		rows = s.Invoices()
	case "F0010":
		rows = copies(s, func(d *data) []*Company { return d.companies })
	case "F03012":
		rows = copies(s, func(d *data) []*CustomerMaster { return d.customers })
	case "F0101":
		rows = copies(s, func(d *data) []*AddressBook { return d.book })
	case "F01151":
		rows = copies(s, func(d *data) []*Email { return d.emails })
	case "F0116":
		rows = copies(s, func(d *data) []*Address { return d.addresses })
	case "F0030":
		rows = copies(s, func(d *data) []*BankAccount { return d.banks })
	case "F03B13Z1":
		rows = s.Receipts()
	case "F0911":
		rows = s.GLEntries()
	case "F0911Z1":
		rows = s.JournalInputs()
	case "F5503B01":
		rows = s.PaymentEvents()
	case "F5503B02":
		rows = s.MandateStatuses()
	case "F5503B03":
		rows = s.RefundOutcomes()
	default:
		http.Error(w, "unknown table", http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, rows)
}

func (s *Server) handleFaults(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Latency       string `json:"latency"`
		FailNext      int    `json:"fail_next"`
		FailStatus    int    `json:"fail_status"`
		RateLimitNext int    `json:"rate_limit_next"`
		RetryAfter    string `json:"retry_after"`
		RestartAfter  int    `json:"restart_after"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		http.Error(w, "faults: "+err.Error(), http.StatusBadRequest)
		return
	}
	f := Faults{FailNext: body.FailNext, FailStatus: body.FailStatus, RateLimitNext: body.RateLimitNext, RestartAfter: body.RestartAfter}
	for _, d := range []struct {
		text string
		into *time.Duration
	}{{body.Latency, &f.Latency}, {body.RetryAfter, &f.RetryAfter}} {
		if d.text == "" {
			continue
		}
		v, err := time.ParseDuration(d.text)
		if err != nil || v < 0 {
			http.Error(w, fmt.Sprintf("faults: duration %q", d.text), http.StatusBadRequest)
			return
		}
		*d.into = v
	}
	if f.FailStatus != 0 && !slices.Contains([]int{500, 502, 503, 504}, f.FailStatus) {
		http.Error(w, "faults: fail_status must be 500, 502, 503 or 504", http.StatusBadRequest)
		return
	}
	s.SetFaults(f)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleAdvance(w http.ResponseWriter, r *http.Request) {
	var body struct {
		By string `json:"by"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, "advance: "+err.Error(), http.StatusBadRequest)
		return
	}
	d, err := time.ParseDuration(body.By)
	if err != nil || d < 0 {
		http.Error(w, fmt.Sprintf("advance: duration %q", body.By), http.StatusBadRequest)
		return
	}
	c := s.opts.Clock
	c.mu.Lock()
	manual := c.manual
	c.mu.Unlock()
	if !manual {
		http.Error(w, "advance: the simulator follows the wall clock", http.StatusConflict)
		return
	}
	c.Advance(d)
	w.WriteHeader(http.StatusNoContent)
}
