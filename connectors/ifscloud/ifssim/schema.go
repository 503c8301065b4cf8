package ifssim

import "time"

// entitySet is one OData entity set the simulator serves. Its functions are
// called with Sim.mu held.
type entitySet struct {
	projection string
	name       string
	fields     []fieldDef // in output order
	schema     map[string]fieldDef
	keys       []string
	rows       func() []*row
	lookup     func(key map[string]value) (*row, bool)
	// touch records a change by someone else (an ETag race).
	touch   func(key map[string]value)
	actions map[string]action
	// create serves POST on the set (OData create); nil: not allowed.
	create func(body map[string]any) (*row, *apiError)
}

// action is a bound action; it runs after the If-Match check and returns
// the row it created.
type action func(key map[string]value, params map[string]any) (*row, *apiError)

func newSet(projection, name string, keys []string, fields ...fieldDef) *entitySet {
	es := &entitySet{projection: projection, name: name, keys: keys, schema: map[string]fieldDef{}}
	for i, f := range fields {
		f.idx = i
		es.fields = append(es.fields, f)
		es.schema[f.name] = f
	}
	return es
}

// row lays out named values in the set's field order.
func (es *entitySet) row(etag string, named map[string]value) *row {
	vals := make([]value, len(es.fields))
	for name, v := range named {
		vals[es.schema[name].idx] = v
	}
	return &row{etag: etag, vals: vals}
}

func (s *Sim) entitySets() map[string]*entitySet {
	c := s.cfg
	stateEnum := "IfsApp." + c.InvoiceProjection + ".CustomerOrderInvState"

	invoices := newSet(c.InvoiceProjection, c.InvoiceSet, []string{"Company", "InvoiceId"},
		fieldDef{name: "Company", k: kString},
		fieldDef{name: "InvoiceId", k: kInt},
		fieldDef{name: "InvoiceNo", k: kString},
		fieldDef{name: "Identity", k: kString},
		fieldDef{name: "PartyType", k: kString},
		fieldDef{name: "InvoiceDate", k: kDate},
		fieldDef{name: "DueDate", k: kDate},
		fieldDef{name: "Currency", k: kString},
		fieldDef{name: "PayTermId", k: kString},
		fieldDef{name: "Objstate", k: kEnum, enum: stateEnum},
		fieldDef{name: "GrossAmount", k: kDecimal},
		fieldDef{name: "OpenAmount", k: kDecimal},
		fieldDef{name: "Rowversion", k: kDateTime},
		fieldDef{name: "Objversion", k: kString},
		fieldDef{name: "Objkey", k: kString},
	)
	invoices.rows = func() []*row { return s.invoiceRows }
	invoices.lookup = func(key map[string]value) (*row, bool) {
		rec, ok := s.invoices[invoiceKey{key["Company"].s, key["InvoiceId"].n}]
		if !ok {
			return nil, false
		}
		return rec.row, true
	}
	invoices.touch = func(key map[string]value) {
		rec := s.invoices[invoiceKey{key["Company"].s, key["InvoiceId"].n}]
		inv := rec.inv
		inv.Modified = time.Time{}
		s.storeInvoice(inv)
	}

	customers := newSet(c.CustomerProjection, c.CustomerSet, []string{"CustomerId"},
		fieldDef{name: "CustomerId", k: kString},
		fieldDef{name: "Name", k: kString},
		fieldDef{name: "Country", k: kString},
		fieldDef{name: "DefaultLanguage", k: kString},
		fieldDef{name: "AssociationNo", k: kString},
		fieldDef{name: "PartyType", k: kString},
		fieldDef{name: "Rowversion", k: kDateTime},
		fieldDef{name: "Objversion", k: kString},
		fieldDef{name: "Objkey", k: kString},
	)
	customers.rows = func() []*row { return s.customerRows }
	customers.lookup = func(key map[string]value) (*row, bool) {
		rec, ok := s.customers[key["CustomerId"].s]
		if !ok {
			return nil, false
		}
		return rec.row, true
	}
	customers.touch = func(key map[string]value) {
		cu := s.customers[key["CustomerId"].s].cu
		cu.Modified = time.Time{}
		s.storeCustomer(cu)
	}
	customers.actions = map[string]action{c.MandateAction: s.registerMandate}

	mandates := newSet(c.CustomerProjection, c.MandateLogSet, []string{"LogId"},
		fieldDef{name: "LogId", k: kInt},
		fieldDef{name: "Company", k: kString},
		fieldDef{name: "CustomerId", k: kString},
		fieldDef{name: "Reference", k: kString},
		fieldDef{name: "MandateId", k: kString},
		fieldDef{name: "Status", k: kString},
		fieldDef{name: "Scheme", k: kString},
		fieldDef{name: "EventTime", k: kDateTime},
		fieldDef{name: "Cause", k: kString},
		fieldDef{name: "ReasonCode", k: kString},
		fieldDef{name: "Description", k: kString},
		fieldDef{name: "Applied", k: kBool},
		fieldDef{name: "CreatedAt", k: kDateTime},
	)
	mandates.rows = func() []*row {
		out := make([]*row, len(s.mandateLog))
		for i, rec := range s.mandateLog {
			out[i] = rec.row
		}
		return out
	}
	mandates.lookup = func(key map[string]value) (*row, bool) {
		id := key["LogId"].n
		if id < 1 || id > int64(len(s.mandateLog)) {
			return nil, false
		}
		return s.mandateLog[id-1].row, true
	}

	sets := map[string]*entitySet{}
	all := append([]*entitySet{invoices, customers, mandates}, s.customerSets()...)
	for _, es := range append(all, s.mixedSets()...) {
		sets[es.projection+"/"+es.name] = es
	}
	return sets
}

// mixedSets are the Mixed Payment projection's sets (see mixed.go).
func (s *Sim) mixedSets() []*entitySet {
	c := s.cfg
	stateEnum := "IfsApp." + c.MixedPaymentProjection + ".MixedPaymentState"
	mixed := newSet(c.MixedPaymentProjection, c.MixedPaymentSet, []string{"Company", "MixedPaymentId"},
		fieldDef{name: "Company", k: kString},
		fieldDef{name: "MixedPaymentId", k: kInt},
		fieldDef{name: "InstituteId", k: kString},
		fieldDef{name: "ShortName", k: kString},
		fieldDef{name: "VoucherDate", k: kDate},
		fieldDef{name: "Description", k: kString},
		fieldDef{name: "Objstate", k: kEnum, enum: stateEnum},
		fieldDef{name: "Objversion", k: kString},
		fieldDef{name: "Objkey", k: kString},
	)
	mixed.rows = func() []*row {
		out := make([]*row, len(s.mixed))
		for i, mp := range s.mixed {
			out[i] = mp.row
		}
		return out
	}
	mixed.lookup = func(key map[string]value) (*row, bool) {
		mp := s.mixedPayment(key["Company"].s, key["MixedPaymentId"].n)
		if mp == nil {
			return nil, false
		}
		return mp.row, true
	}
	mixed.touch = func(key map[string]value) { s.storeMixed(s.mixedPayment(key["Company"].s, key["MixedPaymentId"].n)) }
	mixed.actions = map[string]action{c.ApproveAction: s.approveMixed, c.CancelAction: s.cancelMixed}
	mixed.create = s.createMixedPayment

	lumps := newSet(c.MixedPaymentProjection, c.LumpSumSet, []string{"Company", "MixedPaymentId", "LumpSumId"},
		fieldDef{name: "Company", k: kString},
		fieldDef{name: "MixedPaymentId", k: kInt},
		fieldDef{name: "LumpSumId", k: kInt},
		fieldDef{name: "LumpSumAmount", k: kDecimal},
		fieldDef{name: "Currency", k: kString},
	)
	lumps.rows = func() []*row {
		var out []*row
		for _, mp := range s.mixed {
			for _, l := range mp.lumpRows {
				out = append(out, l.row)
			}
		}
		return out
	}
	lumps.lookup = func(key map[string]value) (*row, bool) {
		mp := s.mixedPayment(key["Company"].s, key["MixedPaymentId"].n)
		if id := key["LumpSumId"].n; mp != nil && id >= 1 && id <= int64(len(mp.lumpRows)) {
			return mp.lumpRows[id-1].row, true
		}
		return nil, false
	}
	lumps.create = s.createLumpSum

	trans := newSet(c.MixedPaymentProjection, c.TransactionSet, []string{"Company", "MixedPaymentId", "LumpSumId", "TransactionId"},
		fieldDef{name: "Company", k: kString},
		fieldDef{name: "MixedPaymentId", k: kInt},
		fieldDef{name: "LumpSumId", k: kInt},
		fieldDef{name: "TransactionId", k: kInt},
		fieldDef{name: "TransactionType", k: kString},
		fieldDef{name: "PartyType", k: kString},
		fieldDef{name: "Identity", k: kString},
		fieldDef{name: "InvoiceId", k: kInt},
		fieldDef{name: "CurrAmount", k: kDecimal},
		fieldDef{name: "Currency", k: kString},
		fieldDef{name: "PaymentReference", k: kString},
		fieldDef{name: "Text", k: kString},
		fieldDef{name: "Account", k: kString},
	)
	trans.rows = func() []*row {
		var out []*row
		for _, mp := range s.mixed {
			for _, l := range mp.lumpRows {
				out = append(out, l.trans...)
			}
		}
		return out
	}
	trans.lookup = func(key map[string]value) (*row, bool) {
		mp := s.mixedPayment(key["Company"].s, key["MixedPaymentId"].n)
		if l := key["LumpSumId"].n; mp != nil && l >= 1 && l <= int64(len(mp.lumpRows)) {
			if t := key["TransactionId"].n; t >= 1 && t <= int64(len(mp.lumpRows[l-1].trans)) {
				return mp.lumpRows[l-1].trans[t-1], true
			}
		}
		return nil, false
	}
	trans.create = s.createTransaction
	return []*entitySet{mixed, lumps, trans}
}
