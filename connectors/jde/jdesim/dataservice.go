package jdesim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/ml-connector/ml-connector/platform/money"
)

// dataRequest is the body of POST /jderest/v2/dataservice.
type dataRequest struct {
	TargetName               string          `json:"targetName"`
	TargetType               string          `json:"targetType"`
	DataServiceType          string          `json:"dataServiceType"`
	ReturnControlIDs         string          `json:"returnControlIDs"`
	MaxPageSize              json.RawMessage `json:"maxPageSize"`
	EnableNextPageProcessing json.RawMessage `json:"enableNextPageProcessing"`
	OutputType               string          `json:"outputType"`
	Query                    *struct {
		MatchType string `json:"matchType"`
		Condition []struct {
			ControlID string `json:"controlId"`
			Operator  string `json:"operator"`
			Value     []struct {
				Content        string `json:"content"`
				SpecialValueID string `json:"specialValueId"`
			} `json:"value"`
		} `json:"condition"`
	} `json:"query"`
}

// condition is a parsed query condition.
type condition struct {
	col   column
	op    string
	value string
	num   int64 // the literal as a number, for numeric and date columns
}

func (s *Server) handleDataService(w http.ResponseWriter, r *http.Request) {
	var req dataRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "Bad Request - Invalid JSON Input", "")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.authenticate(w, r)
	if sess == nil {
		return
	}
	s.stats.DataRequests++
	t, ok := schemas[req.TargetName]
	switch {
	case !ok:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("Table %q is not available to the data service", req.TargetName), "com.oracle.e1.jdemf.JDERestServiceException")
		return
	case req.TargetType != "table":
		writeError(w, http.StatusBadRequest, "targetType must be table or view", "")
		return
	case req.DataServiceType != "BROWSE":
		writeError(w, http.StatusBadRequest, fmt.Sprintf("dataServiceType %q is not supported (BROWSE only)", req.DataServiceType), "")
		return
	case req.OutputType != "" && req.OutputType != "GRID_DATA":
		writeError(w, http.StatusBadRequest, "outputType must be GRID_DATA", "")
		return
	}
	cols, err := returnColumns(t, req.ReturnControlIDs)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	pageSize, err := flexInt(req.MaxPageSize, 100)
	if err != nil || pageSize < 1 {
		writeError(w, http.StatusBadRequest, "maxPageSize must be a positive number", "")
		return
	}
	paging := strings.Trim(string(req.EnableNextPageProcessing), `"`) == "true"
	matchAny := false
	var conds []condition
	if req.Query != nil {
		switch req.Query.MatchType {
		case "", "MATCH_ALL":
		case "MATCH_ANY":
			matchAny = true
		default:
			writeError(w, http.StatusBadRequest, fmt.Sprintf("matchType %q must be MATCH_ALL or MATCH_ANY", req.Query.MatchType), "")
			return
		}
		for _, c := range req.Query.Condition {
			cond, err := s.parseCondition(t, c.ControlID, c.Operator, c.Value)
			if err != nil {
				writeError(w, http.StatusBadRequest, err.Error(), "")
				return
			}
			conds = append(conds, cond)
		}
	}
	rows, err := s.match(t, conds, matchAny)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	rs := &resultSet{token: sess.token, table: t, cols: cols, rows: rows, pageSize: pageSize, state: 1, lastAccess: s.now()}
	s.writePage(w, r, rs, paging)
}

// parseCondition reads one condition against table t.
func (s *Server) parseCondition(t *table, controlID, op string, values []struct {
	Content        string `json:"content"`
	SpecialValueID string `json:"specialValueId"`
}) (condition, error) {
	name, ok := strings.CutPrefix(controlID, t.name+".")
	col, known := t.column(name)
	if !ok || !known {
		return condition{}, fmt.Errorf("condition controlId %q is not a column of %s", controlID, t.name)
	}
	switch op {
	case "EQUAL", "NOT_EQUAL", "GREATER", "LESS", "GREATER_EQUAL", "LESS_EQUAL":
	default:
		return condition{}, fmt.Errorf("condition operator %q is not supported", op)
	}
	if len(values) != 1 || (values[0].SpecialValueID != "" && values[0].SpecialValueID != "LITERAL") {
		return condition{}, fmt.Errorf("condition on %s needs exactly one LITERAL value", controlID)
	}
	c := condition{col: col, op: op, value: values[0].Content}
	var err error
	switch col.kind {
	case kNum:
		c.num, err = strconv.ParseInt(strings.TrimSpace(c.value), 10, 64)
	case kDate:
		c.num, err = s.parseDateLiteral(strings.TrimSpace(c.value))
	}
	if err != nil {
		return condition{}, fmt.Errorf("condition on %s: value %q does not fit the column", controlID, c.value)
	}
	return c, nil
}

// parseDateLiteral reads a date condition value: Julian, or the session
// user's date format.
func (s *Server) parseDateLiteral(v string) (int64, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && len(v) <= 6 {
		return n, nil
	}
	parts := strings.Split(v, s.opts.DateSeparator)
	if len(parts) != 3 || len(s.opts.DateFormat) != 3 {
		return 0, fmt.Errorf("bad date %q", v)
	}
	var y, m, d int
	for i, c := range s.opts.DateFormat {
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			return 0, err
		}
		switch c {
		case 'D':
			d = n
		case 'M':
			m = n
		case 'Y':
			y = 2000 + n
		case 'E':
			y = n
		}
	}
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	if t.Day() != d || int(t.Month()) != m {
		return 0, fmt.Errorf("bad date %q", v)
	}
	return julian(t), nil
}

// match returns copies of the rows of t that satisfy conds, so later
// changes do not show through an open result set.
func (s *Server) match(t *table, conds []condition, matchAny bool) ([]record, error) {
	var out []record
	amounts := map[string]int64{} // literal in a currency -> minor units
	for _, rec := range s.tableRows(t.name) {
		ok := !matchAny
		for _, c := range conds {
			hit, err := compare(rec, c, amounts, func() any { return s.currencyOf(t, rec, c.col.name) })
			if err != nil {
				return nil, err
			}
			if matchAny && hit {
				ok = true
				break
			}
			if !matchAny && !hit {
				ok = false
				break
			}
		}
		if ok || len(conds) == 0 {
			out = append(out, clone(rec))
		}
	}
	return out, nil
}

func compare(rec record, c condition, amounts map[string]int64, currency func() any) (bool, error) {
	var cmp int
	switch v := rec.value(c.col.name).(type) {
	case int64:
		lit := c.num
		if c.col.kind == kAmount {
			cur := decimalsOf(currency())
			key := cur + " " + c.value
			var ok bool
			if lit, ok = amounts[key]; !ok {
				abs, neg := strings.CutPrefix(strings.TrimSpace(c.value), "-")
				minor, err := money.ToMinor(abs, cur)
				if err != nil {
					return false, fmt.Errorf("condition on %s: %v", c.col.name, err)
				}
				if neg {
					minor = -minor
				}
				lit, amounts[key] = minor, minor
			}
		}
		switch {
		case v < lit:
			cmp = -1
		case v > lit:
			cmp = 1
		}
	case string:
		cmp = strings.Compare(strings.TrimSpace(v), strings.TrimSpace(c.value))
	}
	switch c.op {
	case "EQUAL":
		return cmp == 0, nil
	case "NOT_EQUAL":
		return cmp != 0, nil
	case "GREATER":
		return cmp > 0, nil
	case "LESS":
		return cmp < 0, nil
	case "GREATER_EQUAL":
		return cmp >= 0, nil
	}
	return cmp <= 0, nil
}

// returnColumns reads returnControlIDs ("F03B11.DOC|F03B11.DCT").
func returnColumns(t *table, ids string) ([]column, error) {
	if strings.TrimSpace(ids) == "" {
		return t.columns, nil
	}
	var cols []column
	for id := range strings.SplitSeq(ids, "|") {
		name, ok := strings.CutPrefix(strings.TrimSpace(id), t.name+".")
		col, known := t.column(name)
		if !ok || !known {
			return nil, fmt.Errorf("returnControlIDs: %q is not a column of %s", id, t.name)
		}
		cols = append(cols, col)
	}
	return cols, nil
}

// flexInt reads a number that AIS accepts as a JSON string or number.
func flexInt(raw json.RawMessage, def int) (int, error) {
	v := strings.Trim(string(raw), `"`)
	if v == "" || v == "null" {
		return def, nil
	}
	return strconv.Atoi(v)
}

// writePage answers with the next page of rs and, when rows remain and
// paging was asked for, a next link; the result set is kept for it.
func (s *Server) writePage(w http.ResponseWriter, r *http.Request, rs *resultSet, paging bool) {
	end := min(rs.pos+rs.pageSize, len(rs.rows))
	page := rs.rows[rs.pos:end]
	rs.pos = end
	more := end < len(rs.rows)
	out := make([]map[string]any, len(page))
	for i, rec := range page {
		out[i] = s.render(rs.table, rs.cols, rec)
	}
	titles := map[string]string{}
	for _, c := range rs.cols {
		titles[rs.table.name+"_"+c.name] = c.title
	}
	body := map[string]any{
		"fs_DATABROWSE_" + rs.table.name: map[string]any{
			"title": "Data Browser - " + rs.table.name + " [" + rs.table.title + "]",
			"data": map[string]any{"gridData": map[string]any{
				"id":         54,
				"fullGridId": "54",
				"columns":    titles,
				"rowset":     out,
				"summary":    map[string]any{"records": len(page), "moreRecords": more},
			}},
			"errors":   []any{},
			"warnings": []any{},
		},
		"stackId":    1,
		"stateId":    rs.state,
		"currentApp": "DATABROWSE_" + rs.table.name,
		"sysErrors":  []any{},
	}
	if more && paging {
		if rs.rid == "" {
			rs.rid = newToken()[3:19]
			s.resultSets[rs.rid] = rs
		}
		rs.state++
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base := scheme + "://" + r.Host
		if n := nodeOf(r); n.self != "" {
			base = n.self // a node names itself, not the balancer
		}
		q := url.Values{}
		q.Set("stackId", "1")
		q.Set("stateId", strconv.Itoa(rs.state))
		q.Set("rid", rs.rid)
		q.Set("fullGridId", "54")
		q.Set("formOID", rs.table.name)
		q.Set("token", rs.token)
		q.Set("outputType", "GRID_DATA")
		body["rid"] = rs.rid
		body["links"] = []map[string]any{{
			"rel":     "next",
			"href":    base + "/jderest/v2/dataservice/next?" + q.Encode(),
			"context": "1",
		}}
	} else if rs.rid != "" {
		delete(s.resultSets, rs.rid)
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) handleNext(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.authenticate(w, r)
	if sess == nil {
		return
	}
	s.stats.NextPages++
	q := r.URL.Query()
	rs, ok := s.resultSets[q.Get("rid")]
	if ok && (rs.token != sess.token || s.now().Sub(rs.lastAccess) > s.opts.ResultSetTimeout) {
		delete(s.resultSets, rs.rid)
		ok = false
	}
	if !ok || q.Get("stateId") != strconv.Itoa(rs.state) {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"sysErrors": []map[string]string{{
			"TITLE": "JAS_MSG347: The query results expired.  Refresh them by clicking Find again.",
			"DESC":  "JAS_MSG347: The query results expired.  Refresh them by clicking Find again.",
		}}})
		return
	}
	rs.lastAccess = s.now()
	s.writePage(w, r, rs, true)
}

// render turns a record into an AIS grid row.
func (s *Server) render(t *table, cols []column, rec record) map[string]any {
	row := make(map[string]any, len(cols))
	for _, c := range cols {
		key := t.name + "_" + c.name
		switch v := rec.value(c.name).(type) {
		case string:
			if c.kind == kRate {
				// A rate is a number with up to seven decimals; blank is 0.
				if v == "" {
					v = "0"
				}
				row[key] = json.Number(v)
				continue
			}
			if c.name == "MCU" || strings.HasSuffix(c.name, "MCU") {
				v = fmt.Sprintf("%12s", v) // JDE keeps business units right-justified
			}
			row[key] = v
		case int64:
			switch c.kind {
			case kDate:
				row[key] = s.renderDate(v)
			case kAmount:
				row[key] = s.renderAmount(v, decimalsOf(s.currencyOf(t, rec, c.name)))
			default:
				row[key] = json.Number(strconv.FormatInt(v, 10))
			}
		}
	}
	return row
}

func (s *Server) renderDate(j int64) any {
	if s.opts.DateOutput == DatesJulian {
		return json.Number(strconv.FormatInt(j, 10))
	}
	if j == 0 {
		return ""
	}
	t := time.Date(1900+int(j/100000)*100+int(j/1000%100), time.January, int(j%1000), 0, 0, 0, 0, time.UTC)
	if s.opts.DateOutput == DatesCompact {
		return t.Format("20060102")
	}
	parts := make([]string, 0, 3)
	for _, c := range s.opts.DateFormat {
		switch c {
		case 'D':
			parts = append(parts, fmt.Sprintf("%02d", t.Day()))
		case 'M':
			parts = append(parts, fmt.Sprintf("%02d", int(t.Month())))
		case 'Y':
			parts = append(parts, fmt.Sprintf("%02d", t.Year()%100))
		case 'E':
			parts = append(parts, fmt.Sprintf("%04d", t.Year()))
		}
	}
	return strings.Join(parts, s.opts.DateSeparator)
}

func (s *Server) renderAmount(minor int64, currency string) any {
	if s.opts.AmountOutput == AmountsImplied {
		return json.Number(strconv.FormatInt(minor, 10))
	}
	text, _ := money.FromMinor(minor, currency)
	if s.opts.AmountOutput == AmountsString {
		return text
	}
	return json.Number(text)
}

// decimalsOf returns the currency whose decimals an amount of a row with
// currency code cur is shown and compared in: the code itself, or, for a
// code JDE has no decimals for, the data dictionary's default of two
// (stood in for by USD). The client must still refuse such a row.
func decimalsOf(cur any) string {
	code, _ := cur.(string)
	if _, err := money.Exponent(code); err != nil {
		return "USD"
	}
	return code
}

// tableRows returns the live rows of a table.
func (s *Server) tableRows(name string) []record {
	var out []record
	add := func(n int, at func(int) record) {
		out = make([]record, n)
		for i := range n {
			out[i] = at(i)
		}
	}
	d := &s.data
	switch name {
	case "F03B11":
		add(len(d.invoices), func(i int) record { return record{d.invoices[i]} })
	case "F0010":
		add(len(d.companies), func(i int) record { return record{d.companies[i]} })
	case "F03012":
		add(len(d.customers), func(i int) record { return record{d.customers[i]} })
	case "F0101":
		add(len(d.book), func(i int) record { return record{d.book[i]} })
	case "F01151":
		add(len(d.emails), func(i int) record { return record{d.emails[i]} })
	case "F0116":
		add(len(d.addresses), func(i int) record { return record{d.addresses[i]} })
	case "F0030":
		add(len(d.banks), func(i int) record { return record{d.banks[i]} })
	case "F03B13Z1":
		add(len(d.receipts), func(i int) record { return record{d.receipts[i]} })
	case "F0911":
		add(len(d.gl), func(i int) record { return record{d.gl[i]} })
	case "F5503B01":
		add(len(d.events), func(i int) record { return record{d.events[i]} })
	case "F5503B02":
		add(len(d.mandates), func(i int) record { return record{d.mandates[i]} })
	case "F5503B03":
		add(len(d.refunds), func(i int) record { return record{d.refunds[i]} })
	}
	return out
}

// clone copies a row, so a caller cannot change the table through it.
func clone(rec record) record {
	v := reflect.ValueOf(rec.row)
	if v.Kind() != reflect.Pointer {
		return rec
	}
	c := reflect.New(v.Elem().Type())
	c.Elem().Set(v.Elem())
	return record{c.Interface()}
}
