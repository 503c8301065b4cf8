package ifssim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// The query options the simulator implements; others are refused.
var queryOptions = map[string]bool{"$filter": true, "$select": true, "$orderby": true, "$top": true, "$skiptoken": true}

// orderTerm is one $orderby term.
type orderTerm struct {
	f    fieldDef
	desc bool
}

// sortedRow is a matching row with its sort key extracted once.
type sortedRow struct {
	rw  *row
	key []value
}

// skipToken is the server's paging cursor: how many rows of the $top
// window were returned, and the sort key of the last one. Paging by key
// rather than by offset keeps rows from being skipped or repeated when
// others change between pages.
type skipToken struct {
	N   int       `json:"n"`
	Key []*string `json:"k"`
}

// query serves a collection read.
func (s *Sim) query(r *http.Request, es *entitySet, ieee bool) ([]byte, *apiError) {
	q := r.URL.Query()
	for opt := range q {
		if strings.HasPrefix(opt, "$") && !queryOptions[opt] {
			return nil, unsupported("query option %s is not supported", opt)
		}
	}
	var filter node
	if f := q.Get("$filter"); f != "" {
		if s.cfg.RefuseObjstateFilter && namesField(f, "Objstate") {
			return nil, badRequest("ODP_UNSUPPORTED_URL", "$filter: filtering on Objstate is not supported by this projection")
		}
		var aerr *apiError
		if filter, aerr = parseFilter(f, es.schema); aerr != nil {
			return nil, aerr
		}
	}
	sel, aerr := selectFields(q.Get("$select"), es)
	if aerr != nil {
		return nil, aerr
	}
	order, aerr := orderBy(q.Get("$orderby"), es)
	if aerr != nil {
		return nil, aerr
	}
	top := math.MaxInt
	if t := q.Get("$top"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 || n > maxTop {
			return nil, unsupported("$top must be an integer between 1 and %d, got %q", maxTop, t)
		}
		top = n
	}
	var tok skipToken
	var tokKey []value
	if t := q.Get("$skiptoken"); t != "" {
		var aerr *apiError
		if tok, tokKey, aerr = decodeSkipToken(t, order); aerr != nil {
			return nil, aerr
		}
	}

	cmpKey := func(a, b []value) int {
		for i, o := range order {
			c := compare(a[i], b[i])
			if o.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	}
	// One backing array for every sort key keeps a query over a large set
	// from allocating per row.
	width := len(order)
	var rows []sortedRow
	var keys []value
	for _, rw := range es.rows() {
		if filter != nil && !filter.eval(rw.vals) {
			continue
		}
		if len(keys)+width > cap(keys) {
			keys = make([]value, 0, max(1024, 2*cap(keys))*width)
		}
		for _, o := range order {
			keys = append(keys, rw.vals[o.f.idx])
		}
		key := keys[len(keys)-width : len(keys) : len(keys)]
		if tokKey != nil && cmpKey(key, tokKey) <= 0 {
			keys = keys[:len(keys)-width]
			continue
		}
		rows = append(rows, sortedRow{rw: rw, key: key})
	}
	cmpRow := func(a, b sortedRow) int { return cmpKey(a.key, b.key) }
	size := max(0, min(s.cfg.PageSize, top-tok.N, len(rows)))
	more := len(rows) > size
	if more {
		// Only the page is needed in order: select it, then sort it.
		selectSmallest(rows, size, cmpRow)
	}
	page := rows[:size]
	slices.SortFunc(page, cmpRow)

	var b bytes.Buffer
	b.WriteString(`{"@odata.context":`)
	ctx, _ := json.Marshal(s.context(r, es))
	b.Write(ctx)
	b.WriteString(`,"value":[`)
	for i, sr := range page {
		if i > 0 {
			b.WriteByte(',')
		}
		writeEntity(&b, sr.rw, sel, ieee, "")
	}
	b.WriteByte(']')
	if returned := tok.N + size; returned < top && more {
		next := skipToken{N: returned, Key: make([]*string, len(order))}
		for i, v := range page[len(page)-1].key {
			if v.k != kNull {
				t := v.text()
				next.Key[i] = &t
			}
		}
		raw, _ := json.Marshal(next)
		u := *r.URL
		u.Scheme, u.Host = scheme(r), r.Host
		if b, err := url.Parse(s.cfg.NextLinkBase); s.cfg.NextLinkBase != "" && err == nil {
			u.Scheme, u.Host, u.Path = b.Scheme, b.Host, strings.TrimRight(b.Path, "/")+u.Path
		}
		qv := u.Query()
		qv.Set("$skiptoken", base64.RawURLEncoding.EncodeToString(raw))
		u.RawQuery = qv.Encode()
		link, _ := json.Marshal(u.String())
		b.WriteString(`,"@odata.nextLink":`)
		b.Write(link)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// selectSmallest reorders rows so that rows[:k] are the k smallest
// (quickselect; keys are unique because the order ends with the entity key).
func selectSmallest(rows []sortedRow, k int, cmp func(a, b sortedRow) int) {
	lo, hi := 0, len(rows)-1
	for lo < hi {
		// Median of three guards against sorted input.
		mid := lo + (hi-lo)/2
		if cmp(rows[mid], rows[lo]) < 0 {
			rows[mid], rows[lo] = rows[lo], rows[mid]
		}
		if cmp(rows[hi], rows[lo]) < 0 {
			rows[hi], rows[lo] = rows[lo], rows[hi]
		}
		if cmp(rows[mid], rows[hi]) < 0 {
			rows[mid], rows[hi] = rows[hi], rows[mid]
		}
		pivot, p := rows[hi], lo
		for i := lo; i < hi; i++ {
			if cmp(rows[i], pivot) < 0 {
				rows[i], rows[p] = rows[p], rows[i]
				p++
			}
		}
		rows[p], rows[hi] = rows[hi], rows[p]
		switch {
		case p == k:
			return
		case p < k:
			lo = p + 1
		default:
			hi = p - 1
		}
	}
}

// namesField reports whether a $filter mentions a field (outside quotes).
func namesField(filter, field string) bool {
	toks, err := lex(filter)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(toks, func(t token) bool { return t.k == tIdent && t.text == field })
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

func (s *Sim) context(r *http.Request, es *entitySet) string {
	return scheme(r) + "://" + r.Host + s.cfg.APIPath + "/" + es.projection + ".svc/$metadata#" + es.name
}

func selectFields(sel string, es *entitySet) ([]fieldDef, *apiError) {
	if sel == "" || sel == "*" {
		return es.fields, nil
	}
	var out []fieldDef
	for name := range strings.SplitSeq(sel, ",") {
		f, ok := es.schema[strings.TrimSpace(name)]
		if !ok {
			return nil, unsupported("$select: property %s does not exist in %s", strings.TrimSpace(name), es.name)
		}
		out = append(out, f)
	}
	return out, nil
}

// orderBy parses $orderby and appends the keys, so the order is total and
// key-based paging is exact.
func orderBy(ob string, es *entitySet) ([]orderTerm, *apiError) {
	var out []orderTerm
	seen := map[string]bool{}
	if ob != "" {
		for term := range strings.SplitSeq(ob, ",") {
			fields := strings.Fields(term)
			if len(fields) == 0 || len(fields) > 2 {
				return nil, unsupported("$orderby: cannot read %q", term)
			}
			f, ok := es.schema[fields[0]]
			if !ok {
				return nil, unsupported("$orderby: property %s does not exist in %s", fields[0], es.name)
			}
			desc := false
			if len(fields) == 2 {
				switch fields[1] {
				case "asc":
				case "desc":
					desc = true
				default:
					return nil, unsupported("$orderby: %q is not asc or desc", fields[1])
				}
			}
			out = append(out, orderTerm{f: f, desc: desc})
			seen[f.name] = true
		}
	}
	for _, k := range es.keys {
		if !seen[k] {
			out = append(out, orderTerm{f: es.schema[k]})
		}
	}
	return out, nil
}

func decodeSkipToken(t string, order []orderTerm) (skipToken, []value, *apiError) {
	bad := badRequest("ODP_INVALID_SKIPTOKEN", "$skiptoken is not valid for this query")
	raw, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil {
		return skipToken{}, nil, bad
	}
	var tok skipToken
	if json.Unmarshal(raw, &tok) != nil || len(tok.Key) != len(order) || tok.N < 1 {
		return skipToken{}, nil, bad
	}
	key := make([]value, len(order))
	for i, o := range order {
		if tok.Key[i] == nil {
			continue
		}
		v, err := parseLiteralFor(o.f, *tok.Key[i])
		if err != nil {
			return skipToken{}, nil, bad
		}
		key[i] = v
	}
	return tok, key, nil
}

// writeEntity writes one entity with its ETag and the selected fields;
// context, when set, makes it a top-level entity answer.
func writeEntity(b *bytes.Buffer, rw *row, sel []fieldDef, ieee bool, context string) {
	b.WriteByte('{')
	if context != "" {
		c, _ := json.Marshal(context)
		b.WriteString(`"@odata.context":`)
		b.Write(c)
		b.WriteByte(',')
	}
	etag, _ := json.Marshal(rw.etag)
	b.WriteString(`"@odata.etag":`)
	b.Write(etag)
	for _, f := range sel {
		b.WriteString(`,"` + f.name + `":`)
		rw.vals[f.idx].writeJSON(b, ieee)
	}
	b.WriteByte('}')
}
