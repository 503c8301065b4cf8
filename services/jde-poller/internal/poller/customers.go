package poller

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ml-connector/ml-connector/connectors/jde"
	"github.com/ml-connector/ml-connector/platform/watermark"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
)

// customerTable is a table that makes up a customer, keyed by AN8.
type customerTable struct {
	name    string
	columns []string
	// key identifies a row among those of one AN8 updated in the same
	// second (the watermark's tie-breaker).
	key func(jde.Row) string
	// filter restricts every read (F0101: customers only).
	filter []jde.Condition
}

func keyOf(table string, cols ...string) func(jde.Row) string {
	return func(r jde.Row) string {
		parts := make([]string, len(cols))
		for i, c := range cols {
			parts[i] = r.Text(table, c)
		}
		return orderKey(parts...)
	}
}

var (
	tableCustomerMaster = customerTable{name: "F03012",
		columns: []string{"AN8", "CO", "TRAR", "RYIN", "CRCA", "UPMJ", "UPMT"}, key: keyOf("F03012", "AN8")}
	tableAddressBook = customerTable{name: "F0101",
		columns: []string{"AN8", "ALPH", "AT1", "TAX", "TAXC", "LNGP", "UPMJ", "UPMT"}, key: keyOf("F0101", "AN8"),
		filter: []jde.Condition{{Column: "AT1", Op: jde.Equal, Value: "C"}}}
	tableEmail = customerTable{name: "F01151",
		columns: []string{"AN8", "IDLN", "RCK7", "ETP", "EMAL", "UPMJ", "UPMT"}, key: keyOf("F01151", "AN8", "IDLN", "RCK7")}
	tableAddress = customerTable{name: "F0116",
		columns: []string{"AN8", "EFTB", "ADD1", "ADD2", "ADD3", "ADD4", "ADDZ", "CTY1", "ADDS", "CTR", "UPMJ", "UPMT"},
		key:     keyOf("F0116", "AN8", "EFTB")}
	tableBank = customerTable{name: "F0030",
		columns: []string{"AN8", "BKTP", "TNST", "CBNK", "IBAN", "SWFT", "CTR", "BKAT", "UPMJ", "UPMT"}, key: keyOf("F0030", "AN8", "BKTP")}
	sideTables = []customerTable{tableAddressBook, tableEmail, tableAddress, tableBank}
)

// crow is a row of a customer table.
type crow struct {
	row   jde.Row
	an8   string
	stamp stamp
	err   error
}

func (c crow) text(table, col string) string { return c.row.Text(table, col) }

// delta is what changed in one customer table since its watermark.
type delta struct {
	entity string
	next   watermark.Mark // the newest row read: where the watermark goes once published
	an8s   map[string]bool
	rows   []watermark.Row // the changed rows, recorded as handled once published
}

// readDelta reads the rows of t updated since entity's watermark, from
// Overlap before it; a re-read row counts only when its version (its
// stamp and columns, versionOf) is not the one handled already.
func (p *Poller) readDelta(ctx context.Context, t customerTable, entity string, conds []jde.Condition) (delta, error) {
	wm, err := p.marks.Load(ctx, p.cfg.ConnectionID, entity)
	if err != nil {
		return delta{}, err
	}
	d := delta{entity: entity, next: wm.Mark, an8s: map[string]bool{}}
	q := jde.Query{Table: t.name, Columns: t.columns, Conditions: append(slices.Clone(t.filter), conds...)}
	queries := []jde.Query{q}
	if !wm.Mark.IsZero() {
		queries = p.since(q, wm.From)
	}
	collect := func(r jde.Row) error {
		an8 := r.Text(t.name, "AN8")
		st, err := p.readStamp(r, t.name)
		if err != nil {
			d.an8s[an8] = true // its snapshot will be rejected with the reason
			return nil
		}
		m := watermark.Mark{At: p.at(st), Key: t.key(r)}
		row := watermark.Row{Key: m.Key, Version: versionOf(st, columns(r, t.name, t.columns)), At: m.At}
		if wm.Fresh(row) {
			d.an8s[an8] = true
			d.rows = append(d.rows, row)
			if m.Compare(d.next) > 0 {
				d.next = m
			}
		}
		return nil
	}
	for _, q := range queries {
		next, an8s, n := d.next, maps.Clone(d.an8s), len(d.rows)
		if err := p.read(ctx, q, func() { d.next, d.an8s, d.rows = next, maps.Clone(an8s), d.rows[:n] }, collect); err != nil {
			return delta{}, fmt.Errorf("connection %s: read %s: %w", p.cfg.ConnectionName, t.name, err)
		}
	}
	return d, nil
}

// lookup reads the rows of t for the given customers: one query per
// customer for a few, the whole table (per company for F03012) for many.
func (p *Poller) lookup(ctx context.Context, t customerTable, an8s []string) (map[string][]crow, error) {
	out := map[string][]crow{}
	if len(an8s) == 0 {
		return out, nil
	}
	want := map[string]bool{}
	for _, a := range an8s {
		want[a] = true
	}
	collect := func(r jde.Row) error {
		c := crow{row: r, an8: r.Text(t.name, "AN8")}
		if want[c.an8] {
			c.stamp, c.err = p.readStamp(r, t.name)
			out[c.an8] = append(out[c.an8], c)
		}
		return nil
	}
	var queries [][]jde.Condition
	switch {
	case len(an8s) <= p.cfg.SnapshotThreshold:
		for _, a := range an8s {
			queries = append(queries, append(slices.Clone(t.filter), jde.Condition{Column: "AN8", Op: jde.Equal, Value: a}))
		}
	case t.name == tableCustomerMaster.name:
		for _, co := range p.cfg.Settings.Companies {
			queries = append(queries, []jde.Condition{{Column: "CO", Op: jde.Equal, Value: co}})
		}
	default:
		queries = append(queries, t.filter)
	}
	for _, conds := range queries {
		before := map[string]int{}
		for k, v := range out {
			before[k] = len(v)
		}
		reset := func() {
			for k := range out {
				out[k] = out[k][:before[k]]
			}
		}
		q := jde.Query{Table: t.name, Columns: t.columns, Conditions: conds}
		if err := p.read(ctx, q, reset, collect); err != nil {
			return nil, fmt.Errorf("connection %s: read %s: %w", p.cfg.ConnectionName, t.name, err)
		}
	}
	return out, nil
}

// customers publishes a CustomerChanged for every customer (AN8) of a
// configured company whose customer master row changed, or whose name,
// e-mail, address or bank details changed, as a snapshot of all of them.
// The watermarks of the five tables move once every snapshot is
// acknowledged.
func (p *Poller) customers(ctx context.Context, res *Result) error {
	var deltas []delta
	masterChanged := map[[2]string]bool{} // (company, AN8) whose F03012 row changed
	sideChanged := map[string]bool{}
	for _, co := range p.cfg.Settings.Companies {
		d, err := p.readDelta(ctx, tableCustomerMaster, "F03012:"+co, []jde.Condition{{Column: "CO", Op: jde.Equal, Value: co}})
		if err != nil {
			return err
		}
		for an8 := range d.an8s {
			masterChanged[[2]string{co, an8}] = true
		}
		deltas = append(deltas, d)
	}
	for _, t := range sideTables {
		d, err := p.readDelta(ctx, t, t.name, nil)
		if err != nil {
			return err
		}
		for an8 := range d.an8s {
			sideChanged[an8] = true
		}
		deltas = append(deltas, d)
	}
	all := map[string]bool{}
	for k := range masterChanged {
		all[k[1]] = true
	}
	for an8 := range sideChanged {
		all[an8] = true
	}
	an8s := make([]string, 0, len(all))
	for an8 := range all {
		an8s = append(an8s, an8)
	}
	slices.Sort(an8s)

	rows := map[string]map[string][]crow{} // table -> AN8 -> rows
	for _, t := range append([]customerTable{tableCustomerMaster}, sideTables...) {
		found, err := p.lookup(ctx, t, an8s)
		if err != nil {
			return err
		}
		rows[t.name] = found
	}
	var items []pending
	for _, an8 := range an8s {
		for _, master := range rows[tableCustomerMaster.name][an8] {
			co := master.text("F03012", "CO")
			if !slices.Contains(p.cfg.Settings.Companies, co) || !(sideChanged[an8] || masterChanged[[2]string{co, an8}]) {
				continue
			}
			it, rj := p.customerEvent(co, master, rows, an8)
			if rj != nil {
				if err := p.reject(ctx, *rj, res); err != nil {
					return err
				}
			}
			items = append(items, it)
		}
	}
	if err := p.publish(ctx, "", items, res); err != nil {
		return err
	}
	for _, d := range deltas {
		if d.next.At.IsZero() {
			continue
		}
		if err := p.marks.Save(ctx, p.cfg.ConnectionID, d.entity, d.next, d.rows); err != nil {
			return fmt.Errorf("connection %s: %w", p.cfg.ConnectionName, err)
		}
	}
	return nil
}

// customerEvent builds the snapshot of customer an8 in company co.
func (p *Poller) customerEvent(co string, master crow, rows map[string]map[string][]crow, an8 string) (pending, *rejection) {
	it := pending{co: co}
	book, emails := rows[tableAddressBook.name][an8], rows[tableEmail.name][an8]
	addrs, banks := rows[tableAddress.name][an8], rows[tableBank.name][an8]
	newest := master.stamp
	var errs []string
	var read []byte // every row of the snapshot, for its version
	for _, set := range []struct {
		t    customerTable
		rows []crow
	}{{tableCustomerMaster, []crow{master}}, {tableAddressBook, book}, {tableEmail, emails}, {tableAddress, addrs}, {tableBank, banks}} {
		texts := make([][]byte, 0, len(set.rows))
		for _, r := range set.rows {
			if r.err != nil {
				errs = append(errs, r.err.Error())
			} else if p.at(r.stamp).After(p.at(newest)) {
				newest = r.stamp
			}
			texts = append(texts, columns(r.row, set.t.name, set.t.columns))
		}
		// AIS promises no order; the version must not move when no row did.
		slices.SortFunc(texts, bytes.Compare)
		for _, text := range texts {
			read = append(append(append(read, set.t.name...), 0), text...)
		}
	}
	// The newest stamp alone would name a second change within its second
	// as the first, and JetStream and the orchestrator would drop it.
	version := versionOf(newest, read)
	rejected := func(err error) (pending, *rejection) {
		return it, &rejection{kind: kindCustomer, company: co, key: an8, version: version, table: "F03012", err: err}
	}
	if len(errs) > 0 {
		return rejected(fmt.Errorf("%s", strings.Join(errs, "; ")))
	}
	if len(book) == 0 {
		return rejected(fmt.Errorf("customer %s has no address book (F0101) row with search type C", an8))
	}
	ab := book[0]
	name := ab.text("F0101", "ALPH")
	currency := master.text("F03012", "CRCA")
	ev := &mlcv1.CustomerChanged{
		SchemaVersion: 1,
		Erp:           &mlcv1.ErpRef{Erp: mlcv1.Erp_ERP_JDE, Connection: p.cfg.ConnectionName, Company: co},
		CustomerId:    an8,
		Version:       version,
		Name:          name,
		Language:      language(ab.text("F0101", "LNGP")),
		UpdatedAt:     timestamppb.New(p.at(newest)),
		ErpFields:     map[string]string{},
	}
	if ab.text("F0101", "TAXC") == "P" {
		if family, given, ok := strings.Cut(name, ","); ok {
			ev.FamilyName, ev.GivenName = strings.TrimSpace(family), strings.TrimSpace(given)
		}
	} else {
		ev.CompanyName = name
	}
	switch currency {
	case "SEK":
		ev.SwedishIdentityNumber = ab.text("F0101", "TAX")
	case "DKK":
		ev.DanishIdentityNumber = ab.text("F0101", "TAX")
	}
	if e, ok := pickEmail(emails); ok {
		ev.Email = e.text("F01151", "EMAL")
	}
	country := ""
	if a, ok := p.pickAddress(addrs); ok {
		ev.AddressLine1 = a.text("F0116", "ADD1")
		ev.AddressLine2 = a.text("F0116", "ADD2")
		ev.AddressLine3 = strings.TrimSpace(a.text("F0116", "ADD3") + " " + a.text("F0116", "ADD4"))
		ev.City = a.text("F0116", "CTY1")
		ev.Region = a.text("F0116", "ADDS")
		ev.PostalCode = a.text("F0116", "ADDZ")
		country = a.text("F0116", "CTR")
		ev.CountryCode = country
	}
	if b, ok := pickBank(banks); ok {
		bd := &mlcv1.BankDetails{
			AccountHolderName: name,
			Iban:              b.text("F0030", "IBAN"),
			BranchCode:        b.text("F0030", "TNST"),
			CountryCode:       b.text("F0030", "CTR"),
			Currency:          currency,
			AccountType:       map[string]string{"C": "checking", "S": "savings"}[b.text("F0030", "BKAT")],
		}
		if bd.Iban == "" {
			bd.AccountNumber = b.text("F0030", "CBNK")
		}
		if bd.CountryCode == "" {
			bd.CountryCode = country
		}
		routeBank(bd)
		if swift := b.text("F0030", "SWFT"); swift != "" {
			ev.ErpFields["SWFT"] = swift
		}
		ev.BankDetails = bd
	}
	for field, v := range map[string]string{
		"CO": co, "TRAR": master.text("F03012", "TRAR"), "RYIN": master.text("F03012", "RYIN"), "CRCA": currency,
		"AT1": ab.text("F0101", "AT1"), "TAXC": ab.text("F0101", "TAXC"), "LNGP": ab.text("F0101", "LNGP"),
	} {
		if v != "" {
			ev.ErpFields[field] = v
		}
	}
	msg, err := p.message(co, kindCustomer, an8, version, ev)
	if err != nil {
		return rejected(err)
	}
	it.msg, it.kind = msg, kindCustomer
	return it, nil
}

// pickEmail prefers an e-mail (type E) of the entity itself (who's who
// line 0), then the lowest line.
func pickEmail(rows []crow) (crow, bool) {
	best, found := crow{}, false
	rank := func(c crow) string {
		t := "1"
		if c.text("F01151", "ETP") == "E" {
			t = "0"
		}
		return fmt.Sprintf("%s|%09s|%09s", t, c.text("F01151", "IDLN"), c.text("F01151", "RCK7"))
	}
	for _, r := range rows {
		if r.text("F01151", "EMAL") == "" {
			continue
		}
		if !found || rank(r) < rank(best) {
			best, found = r, true
		}
	}
	return best, found
}

// pickAddress takes the address in effect today: the latest effective
// date not in the future, else the earliest.
func (p *Poller) pickAddress(rows []crow) (crow, bool) {
	today := jde.DateOf(p.cfg.Now().In(p.cfg.Settings.Location)).Julian()
	var current, earliest crow
	curDay, earlyDay := -1, -1
	for _, r := range rows {
		d, err := jde.ParseDate(r.text("F0116", "EFTB"), p.format)
		if err != nil {
			continue
		}
		j := d.Julian()
		if j <= today && j > curDay {
			current, curDay = r, j
		}
		if earlyDay < 0 || j < earlyDay {
			earliest, earlyDay = r, j
		}
	}
	if curDay >= 0 {
		return current, true
	}
	return earliest, earlyDay >= 0
}

// pickBank prefers the customer record type C.
func pickBank(rows []crow) (crow, bool) {
	for _, r := range rows {
		if r.text("F0030", "BKTP") == "C" {
			return r, true
		}
	}
	if len(rows) > 0 {
		return rows[0], true
	}
	return crow{}, false
}

// language maps JDE's language preference to ISO 639-1; blank is the
// system language, English.
func language(lngp string) string {
	return map[string]string{"": "en", "E": "en", "F": "fr", "G": "de", "I": "it", "S": "es"}[lngp]
}

// routeBank moves the F0030 transit number to the field GoCardless reads
// for the account's country: in the US it is the ABA routing number (bank
// code); in Canada JDE keeps the institution and transit together
// (IIITTTTT), which GoCardless takes apart as bank code and branch code;
// elsewhere (a UK sort code, say) it is the branch code. The account type
// (checking or savings) is a US notion that GoCardless refuses elsewhere.
func routeBank(bd *mlcv1.BankDetails) {
	transit := strings.NewReplacer("-", "", " ", "").Replace(bd.GetBranchCode())
	if bd.GetCountryCode() != "US" {
		bd.AccountType = "" // checking/savings exists only for US accounts
	}
	switch bd.GetCountryCode() {
	case "US":
		bd.BankCode, bd.BranchCode = transit, ""
	case "CA":
		if len(transit) == 8 {
			bd.BankCode, bd.BranchCode = transit[:3], transit[3:]
		}
	}
}
