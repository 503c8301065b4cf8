package jde

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

const pathDataService = "/jderest/v2/dataservice"

// Operator compares a column with a value in a data service condition.
type Operator string

// The comparison operators of the AIS data service.
const (
	Equal        Operator = "EQUAL"
	NotEqual     Operator = "NOT_EQUAL"
	Greater      Operator = "GREATER"
	Less         Operator = "LESS"
	GreaterEqual Operator = "GREATER_EQUAL"
	LessEqual    Operator = "LESS_EQUAL"
)

// Condition is one condition of a BROWSE; all conditions of a Query must
// hold (MATCH_ALL).
type Condition struct {
	Column string // short column name, e.g. "UPMJ"
	Op     Operator
	Value  string // literal, e.g. "126001"
}

// Query is a BROWSE of one table.
type Query struct {
	Table      string   // e.g. "F03B11"
	Columns    []string // short names, e.g. "DOC", "DCT"; returned as F03B11_DOC...
	Conditions []Condition
	// PageSize overrides the client's maxPageSize for this query.
	PageSize int
}

func (q Query) validate() error {
	if !isIdent(q.Table) || len(q.Columns) == 0 {
		return fmt.Errorf("%w: query needs a table name and columns", ErrInvalid)
	}
	for _, col := range q.Columns {
		if !isIdent(col) {
			return fmt.Errorf("%w: query %s: bad column %q", ErrInvalid, q.Table, col)
		}
	}
	for _, cond := range q.Conditions {
		switch cond.Op {
		case Equal, NotEqual, Greater, Less, GreaterEqual, LessEqual:
		default:
			return fmt.Errorf("%w: query %s: unknown operator %q", ErrInvalid, q.Table, cond.Op)
		}
		if !isIdent(cond.Column) {
			return fmt.Errorf("%w: query %s: bad condition column %q", ErrInvalid, q.Table, cond.Column)
		}
	}
	return nil
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Row is one row of a BROWSE, keyed as AIS keys it: "<table>_<column>".
// Values are json.Number, string, bool or nil.
type Row map[string]any

// Text returns the value of a column (short name) of table as text, with
// JDE's padding trimmed; numbers keep their exact decimal text.
func (r Row) Text(table, column string) string {
	switch v := r[table+"_"+column].(type) {
	case string:
		return strings.TrimSpace(v)
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}

type dataRequest struct {
	TargetName               string    `json:"targetName"`
	TargetType               string    `json:"targetType"`
	DataServiceType          string    `json:"dataServiceType"`
	ReturnControlIDs         string    `json:"returnControlIDs"`
	MaxPageSize              string    `json:"maxPageSize"`
	EnableNextPageProcessing string    `json:"enableNextPageProcessing"`
	NextPageTimeInterval     string    `json:"nextPageTimeInterval"`
	OutputType               string    `json:"outputType"`
	Query                    dataQuery `json:"query"`
}

type dataQuery struct {
	AutoFind  bool            `json:"autoFind"`
	MatchType string          `json:"matchType"`
	Condition []dataCondition `json:"condition"`
}

type dataCondition struct {
	ControlID string      `json:"controlId"`
	Operator  string      `json:"operator"`
	Value     []dataValue `json:"value"`
}

type dataValue struct {
	Content        string `json:"content"`
	SpecialValueID string `json:"specialValueId"`
}

type gridPage struct {
	Data struct {
		GridData struct {
			Rowset  []Row `json:"rowset"`
			Summary struct {
				Records     int  `json:"records"`
				MoreRecords bool `json:"moreRecords"`
			} `json:"summary"`
		} `json:"gridData"`
	} `json:"data"`
}

type link struct {
	Rel  string `json:"rel"`
	Href string `json:"href"`
}

// Browse runs q and hands its rows to fn one page at a time, following
// the next-page links while AIS reports moreRecords. An error from fn stops
// the browse and is returned as is.
//
// A 444 on the first page is handled like any call (log in, repeat once).
// A next-page call is never repeated, because AIS may already have moved
// the result set on: if it fails for a transient reason, or AIS has lost
// the result set (444 after a restart, JAS_MSG347 after a timeout), Browse
// returns an error matching ErrResultSetLost and the caller must rerun the
// query from its own last safe point.
func (c *Client) Browse(ctx context.Context, q Query, fn func(rows []Row) error) error {
	if err := q.validate(); err != nil {
		return err
	}
	op := "dataservice " + q.Table
	size := q.PageSize
	if size <= 0 {
		size = c.cfg.PageSize
	}
	ids := make([]string, len(q.Columns))
	for i, col := range q.Columns {
		ids[i] = q.Table + "." + col
	}
	req := dataRequest{
		TargetName:               q.Table,
		TargetType:               "table",
		DataServiceType:          "BROWSE",
		ReturnControlIDs:         strings.Join(ids, "|"),
		MaxPageSize:              strconv.Itoa(size),
		EnableNextPageProcessing: "true",
		// Turns off background "data dripping": each page is read when
		// asked for, so a slow consumer does not run into the result set
		// timeout with half-fetched pages.
		NextPageTimeInterval: "0",
		OutputType:           "GRID_DATA",
		Query:                dataQuery{AutoFind: true, MatchType: "MATCH_ALL", Condition: []dataCondition{}},
	}
	for _, cond := range q.Conditions {
		req.Query.Condition = append(req.Query.Condition, dataCondition{
			ControlID: q.Table + "." + cond.Column,
			Operator:  string(cond.Op),
			Value:     []dataValue{{Content: cond.Value, SpecialValueID: "LITERAL"}},
		})
	}
	var raw map[string]json.RawMessage
	// The result set belongs to the session that opened it: every page is
	// asked for with that session, even if it is due for a refresh.
	sess, err := c.callIn(ctx, op, pathDataService, req, &raw)
	if err != nil {
		return err
	}
	for page := 1; ; page++ {
		grid, next, err := readPage(op, q.Table, raw)
		if err != nil {
			return err
		}
		if err := fn(grid.Data.GridData.Rowset); err != nil {
			return err
		}
		if !grid.Data.GridData.Summary.MoreRecords {
			return nil
		}
		if next == "" {
			return fmt.Errorf("jde: %s: %w: moreRecords without a next link", op, ErrResultSetLost)
		}
		if raw, err = c.nextPage(ctx, sess, fmt.Sprintf("%s page %d", op, page+1), next); err != nil {
			return err
		}
	}
}

// readPage picks the grid of table and the next link out of a response.
func readPage(op, table string, raw map[string]json.RawMessage) (gridPage, string, error) {
	var grid gridPage
	form, ok := raw["fs_DATABROWSE_"+table]
	if !ok {
		return grid, "", fmt.Errorf("jde: %s: %w: response has no fs_DATABROWSE_%s", op, ErrUnavailable, table)
	}
	dec := json.NewDecoder(bytes.NewReader(form))
	dec.UseNumber()
	if err := dec.Decode(&grid); err != nil {
		return grid, "", fmt.Errorf("jde: %s: %w: unreadable grid: %w", op, ErrUnavailable, err)
	}
	var links []link
	if l, ok := raw["links"]; ok {
		if err := json.Unmarshal(l, &links); err != nil {
			return grid, "", fmt.Errorf("jde: %s: %w: unreadable links: %w", op, ErrUnavailable, err)
		}
	}
	for _, l := range links {
		if l.Rel == "next" {
			return grid, l.Href, nil
		}
	}
	return grid, "", nil
}

// nextPage follows a next link once. AIS puts the session token into the
// link's query; it is removed (the header carries the current one), so the
// token never lands in URLs, traces or proxies' logs.
func (c *Client) nextPage(ctx context.Context, s *session, op, href string) (map[string]json.RawMessage, error) {
	u, err := c.base.Parse(href)
	if err != nil {
		return nil, fmt.Errorf("jde: %s: %w: unreadable next link", op, ErrResultSetLost)
	}
	// AIS names the node holding the result set, which behind a load
	// balancer is that node's own host and port. Following a link to any
	// host but the base URL's or a configured node of the same deployment
	// would hand the token to another host.
	if home := u.Scheme == c.base.Scheme && u.Host == c.base.Host; !home && !c.nodes[u.Scheme+"://"+u.Host] {
		return nil, fmt.Errorf("jde: %s: %w: next link points at %s://%s, which is neither the AIS base URL nor one of the connection's ais_nodes",
			op, ErrResultSetLost, u.Scheme, u.Host)
	}
	if u.User != nil {
		return nil, fmt.Errorf("jde: %s: %w: next link carries credentials", op, ErrResultSetLost)
	}
	qv := u.Query()
	qv.Del("token")
	u.RawQuery = qv.Encode()
	resp, err := c.send(ctx, exchange{op: op, url: u.String(), body: []byte("{}"), token: s.token, noWait: true})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrResultSetLost, err)
	}
	switch {
	case resp.status == StatusInvalidToken:
		c.dropSession(s)
		// Log in now, so the caller's rerun starts with a live session.
		if _, err := c.session(ctx); err != nil {
			return nil, fmt.Errorf("jde: %s: %w: %w", op, ErrResultSetLost, err)
		}
		return nil, fmt.Errorf("jde: %s: %w: session ended (AIS restarted or token expired)", op, ErrResultSetLost)
	case resultSetExpired(resp):
		return nil, fmt.Errorf("%w: %w", ErrResultSetLost, decodeError(op, resp))
	}
	var raw map[string]json.RawMessage
	if err := decodeOK(op, resp, &raw); err != nil {
		return nil, err
	}
	return raw, nil
}
