// Package jdesim is a simulator of a JD Edwards EnterpriseOne AIS server,
// faithful to the rules ml-connector depends on: session tokens from
// /jderest/v2/tokenrequest with a limited lifetime, HTTP 444 for a token
// that is expired, logged out or lost to a restart, the jde-AIS-Auth and
// jde-AIS-Auth-Device headers, the data service BROWSE with conditions,
// maxPageSize and next-page links over a result set that belongs to its
// session and expires, multi-currency ledgers (F0010 company currencies,
// F03B11 domestic and foreign amounts, currency.go), the standard receipt
// orchestration (F03B13Z1 rows processed as R03B551 would,
// receiptsinput.go), ml-connector's own receipt, failure, refund and
// mandate orchestrations, which write F03B13Z1 receipt rows, F0911 GL
// entries and site tables idempotently per external reference, and AIS
// nodes with node-bound sessions behind a cookie-affinity balancer
// (balancer.go).
//
// It serves in-process (Server is an http.Handler) and as the jdesim
// binary. Tests drive it through Go methods; the same controls are served
// under /_sim/ for the binary. Faults can be injected: latency, 5xx, 429
// with Retry-After, an AIS restart after a number of requests, and expiry
// of every session.
package jdesim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// DateOutput is how the data service renders date columns.
type DateOutput string

const (
	// DatesFormatted renders dates in the session user's format, e.g.
	// "01/31/2026" for MDE with "/".
	DatesFormatted DateOutput = "formatted"
	// DatesJulian renders JDE's stored CYYDDD number, e.g. 126031.
	DatesJulian DateOutput = "julian"
	// DatesCompact renders "20260131".
	DatesCompact DateOutput = "compact"
)

// AmountOutput is how the data service renders amount columns.
type AmountOutput string

const (
	// AmountsDecimal renders JSON numbers with the currency's decimals
	// applied, e.g. 1234.50.
	AmountsDecimal AmountOutput = "decimal"
	// AmountsString renders the same as JSON strings, e.g. "1234.50".
	AmountsString AmountOutput = "string"
	// AmountsImplied renders the stored integers, e.g. 123450.
	AmountsImplied AmountOutput = "implied"
)

// Options configure a simulator. Zero values take the defaults.
type Options struct {
	Username    string // default "JDE"
	Password    string // default "JDE"
	Environment string // default "JDV920"; a login naming another is refused
	// DateFormat and DateSeparator are the user's date preferences
	// reported at login and used for formatted dates (default MDE, "/").
	DateFormat    string
	DateSeparator string
	// SessionLifetime is how long a token stays valid after login
	// (default 60m).
	SessionLifetime time.Duration
	// ResultSetTimeout is how long a paged result set stays open between
	// next-page calls (default 60s, like the HTML server's resultSetTimeout).
	ResultSetTimeout time.Duration
	DateOutput       DateOutput   // default DatesFormatted
	AmountOutput     AmountOutput // default AmountsDecimal
	// Orchestration names (defaults MLC_PostReceipt, MLC_PaymentFailure,
	// MLC_RefundOutcome, MLC_MandateStatus).
	ReceiptOrchestration string
	FailureOrchestration string
	RefundOrchestration  string
	MandateOrchestration string
	// ReceiptsInputOrchestration is the standard receipt orchestration,
	// an F03B13Z1 row processed by R03B551 (default MLC_ReceiptsInput).
	ReceiptsInputOrchestration string
	// JournalEntryOrchestration adds a journal entry's F0911Z1 lines and
	// runs R09110Z over them (default MLC_JournalEntry, journalentry.go).
	JournalEntryOrchestration string
	// RefusalsAsErrors makes the standard orchestration report a refusal
	// as a failed step (HTTP 500, userDefinedErrorText) rather than as
	// jde__status ERROR in a 200 answer (receiptsinput.go).
	RefusalsAsErrors bool
	// Companies are the F0010 rows: company code -> its currency. Nil
	// means {"00001": "USD", "00002": "USD"}; a company without a row has
	// multi-currency off and all its amounts in CRCD.
	Companies map[string]string
	// Rates add to or override the exchange rates (F0015) the simulator
	// converts with, as "FROM/TO" -> multiplier, e.g. "EUR/USD": "1.08".
	Rates map[string]string
	// ARObject is the object account of AR trade in every business unit,
	// the other side of a receipt's GL entry (default "1210").
	ARObject string
	// Clock is the simulator's time; nil means the wall clock.
	Clock *Clock
}

func (o *Options) defaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.Username, "JDE")
	def(&o.Password, "JDE")
	def(&o.Environment, "JDV920")
	def(&o.DateFormat, "MDE")
	def(&o.DateSeparator, "/")
	def((*string)(&o.DateOutput), string(DatesFormatted))
	def((*string)(&o.AmountOutput), string(AmountsDecimal))
	def(&o.ReceiptOrchestration, "MLC_PostReceipt")
	def(&o.FailureOrchestration, "MLC_PaymentFailure")
	def(&o.RefundOrchestration, "MLC_RefundOutcome")
	def(&o.MandateOrchestration, "MLC_MandateStatus")
	def(&o.ReceiptsInputOrchestration, "MLC_ReceiptsInput")
	def(&o.JournalEntryOrchestration, "MLC_JournalEntry")
	def(&o.ARObject, "1210")
	if o.SessionLifetime == 0 {
		o.SessionLifetime = 60 * time.Minute
	}
	if o.ResultSetTimeout == 0 {
		o.ResultSetTimeout = 60 * time.Second
	}
	if o.Clock == nil {
		o.Clock = &Clock{}
	}
	if o.Companies == nil {
		o.Companies = map[string]string{"00001": "USD", "00002": "USD"}
	}
}

// Clock is the simulator's notion of time. The zero Clock follows the wall
// clock; NewClock makes one that only moves when told to.
type Clock struct {
	mu     sync.Mutex
	manual bool
	now    time.Time
}

// NewClock returns a manual clock standing at start.
func NewClock(start time.Time) *Clock { return &Clock{manual: true, now: start} }

// Now returns the current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.manual {
		return time.Now()
	}
	return c.now
}

// Advance moves a manual clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Faults are injected failures; each counter is used up as requests arrive.
type Faults struct {
	// Latency delays every request.
	Latency time.Duration `json:"latency"`
	// FailNext requests answer FailStatus (default 503) with an AIS error.
	FailNext   int `json:"fail_next"`
	FailStatus int `json:"fail_status"`
	// RateLimitNext requests answer 429 with Retry-After (whole seconds).
	RateLimitNext int           `json:"rate_limit_next"`
	RetryAfter    time.Duration `json:"retry_after"`
	// RestartAfter restarts AIS once that many more requests have been
	// served: every session and result set is gone (0 = never).
	RestartAfter int `json:"restart_after"`
}

// Stats counts requests by kind.
type Stats struct {
	Requests       int `json:"requests"`
	Logins         int `json:"logins"`
	FailedLogins   int `json:"failed_logins"`
	Logouts        int `json:"logouts"`
	DataRequests   int `json:"data_requests"`
	NextPages      int `json:"next_pages"`
	Orchestrations int `json:"orchestrations"`
	InvalidTokens  int `json:"invalid_tokens"` // 444 answers
	// WrongNode counts tokens used on another node than the one that
	// issued them (each also answered 444).
	WrongNode int `json:"wrong_node"`
	Restarts  int `json:"restarts"`
	// TokensInURL counts requests that carried a session token in the
	// URL, where proxies and traces would keep it.
	TokensInURL int `json:"tokens_in_url"`
	// ActiveSessions is the number of sessions currently valid.
	ActiveSessions int `json:"active_sessions"`
}

// session is a logged-in token.
type session struct {
	node       string // the AIS server that issued it (balancer.go)
	token      string
	user       string
	device     string
	loggedInAt time.Time
}

// resultSet is an open paged BROWSE.
type resultSet struct {
	rid        string
	token      string
	table      *table
	cols       []column
	rows       []record
	pos        int
	pageSize   int
	state      int
	lastAccess time.Time
}

// Server is the simulated AIS server.
type Server struct {
	opts Options
	mux  *http.ServeMux

	mu         sync.Mutex
	faults     Faults
	stats      Stats
	sessions   map[string]*session
	resultSets map[string]*resultSet
	data       data
	postings   map[string]posting // by external reference
	// receiptsByKey are the answers of the standard receipt
	// orchestration by F03B13Z1 key.
	receiptsByKey map[receiptsInputKey]map[string]any
	// journalByKey are the answers of the journal entry orchestration by
	// F0911Z1 entry (EDUS, EDBT, EDTN).
	journalByKey map[journalKey]map[string]any
	next         nextNumbers
}

// data holds the tables.
type data struct {
	companies    []*Company
	invoices     []*Invoice
	invoiceIndex map[DocKey]*Invoice
	customers    []*CustomerMaster
	book         []*AddressBook
	emails       []*Email
	addresses    []*Address
	banks        []*BankAccount
	receipts     []*ReceiptInput
	journal      []*JournalInput
	gl           []*GLEntry
	events       []*PaymentEvent
	mandates     []*MandateStatus
	refunds      []*RefundOutcome
}

// nextNumbers is JDE's next-number service, per use.
type nextNumbers struct {
	batch, receipt, event, refund, journal int64
}

// New returns a simulator with empty tables.
func New(opts Options) *Server {
	opts.defaults()
	s := &Server{
		opts:          opts,
		sessions:      map[string]*session{},
		resultSets:    map[string]*resultSet{},
		postings:      map[string]posting{},
		receiptsByKey: map[receiptsInputKey]map[string]any{},
		journalByKey:  map[journalKey]map[string]any{},
		data:          data{invoiceIndex: map[DocKey]*Invoice{}},
		next:          nextNumbers{batch: 9000, receipt: 700000, event: 1, refund: 1, journal: 800000},
	}
	for co, cur := range opts.Companies {
		s.data.companies = append(s.data.companies, &Company{CO: co, NAME: "Company " + co, CRCD: cur})
	}
	slices.SortFunc(s.data.companies, func(a, b *Company) int { return strings.Compare(a.CO, b.CO) })
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST /jderest/v2/tokenrequest", s.handleLogin)
	s.mux.HandleFunc("POST /jderest/v2/tokenrequest/logout", s.handleLogout)
	s.mux.HandleFunc("POST /jderest/v2/dataservice", s.handleDataService)
	s.mux.HandleFunc("POST /jderest/v2/dataservice/next", s.handleNext)
	s.mux.HandleFunc("GET /jderest/v2/dataservice/next", s.handleNext)
	s.mux.HandleFunc("POST /jderest/v3/orchestrator/{name}", s.handleOrchestration)
	s.controlRoutes()
	return s
}

// Clock returns the simulator's clock.
func (s *Server) Clock() *Clock { return s.opts.Clock }

func (s *Server) now() time.Time { return s.opts.Clock.Now() }

// ServeHTTP serves AIS and the /_sim/ control API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		s.mux.ServeHTTP(w, r)
		return
	}
	if !s.injectFaults(w) {
		return
	}
	if r.URL.Query().Has("token") {
		s.mu.Lock()
		s.stats.TokensInURL++
		s.mu.Unlock()
	}
	if r.Method == http.MethodPost && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "Invalid Content-Type Header - Must use application/json", "")
		return
	}
	s.mux.ServeHTTP(w, r)
}

// injectFaults applies the configured faults to one request and reports
// whether it should still be served.
func (s *Server) injectFaults(w http.ResponseWriter) bool {
	s.mu.Lock()
	s.stats.Requests++
	f := &s.faults
	latency := f.Latency
	if f.RestartAfter > 0 {
		f.RestartAfter--
		if f.RestartAfter == 0 {
			s.restartLocked()
		}
	}
	var status int
	var retryAfter time.Duration
	switch {
	case f.RateLimitNext > 0:
		f.RateLimitNext--
		status, retryAfter = http.StatusTooManyRequests, f.RetryAfter
	case f.FailNext > 0:
		f.FailNext--
		status = f.FailStatus
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
	}
	s.mu.Unlock()
	if latency > 0 {
		time.Sleep(latency)
	}
	if status == 0 {
		return true
	}
	if retryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(retryAfter.Round(time.Second)/time.Second)))
	}
	writeError(w, status, "Simulated failure: "+http.StatusText(status), "com.oracle.e1.jdemf.JDERestServiceException")
	return false
}

// SetFaults replaces the injected faults.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Restart simulates an AIS server restart: every session and every open
// result set is gone, so the next call with an old token gets 444.
func (s *Server) Restart() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restartLocked()
}

func (s *Server) restartLocked() {
	s.sessions = map[string]*session{}
	s.resultSets = map[string]*resultSet{}
	s.stats.Restarts++
}

// Stats returns the request counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	now := s.now()
	for _, sess := range s.sessions {
		if now.Sub(sess.loggedInAt) < s.opts.SessionLifetime {
			st.ActiveSessions++
		}
	}
	return st
}

// ResetStats zeroes the request counters.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = Stats{}
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers with AIS's error body.
func writeError(w http.ResponseWriter, status int, msg, exception string) {
	writeJSON(w, status, map[string]string{
		"message":   msg,
		"exception": exception,
		"timeStamp": time.Now().UTC().Format("2006-01-02:15.04.05"),
		"status":    "ERROR",
	})
}

func newToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "044" + hex.EncodeToString(b)
}

// tokenRequest is the body of /tokenrequest.
type tokenRequest struct {
	Username    string `json:"username"`
	Password    string `json:"password"`
	DeviceName  string `json:"deviceName"`
	Environment string `json:"environment"`
	Role        string `json:"role"`
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req tokenRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "Bad Request - Invalid JSON Input", "")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The error never repeats the submitted password.
	if req.Username != s.opts.Username || req.Password != s.opts.Password ||
		(req.Environment != "" && req.Environment != s.opts.Environment) {
		s.stats.FailedLogins++
		writeError(w, http.StatusForbidden, "Authorization Failure: invalid user name, password or environment", "com.oracle.e1.jdemf.JDERestServiceException")
		return
	}
	sess := &session{node: nodeOf(r).name, token: newToken(), user: req.Username, device: req.DeviceName, loggedInAt: s.now()}
	s.sessions[sess.token] = sess
	s.stats.Logins++
	role := req.Role
	if role == "" {
		role = "*ALL"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"username":    req.Username,
		"environment": s.opts.Environment,
		"role":        role,
		"jasserver":   "http://jdesim:8080",
		"userInfo": map[string]any{
			"token":            sess.token,
			"langPref":         "  ",
			"locale":           "en",
			"dateFormat":       s.opts.DateFormat,
			"dateSeperator":    s.opts.DateSeparator,
			"simpleDateFormat": "",
			"decimalFormat":    ".",
			"addressNumber":    0,
			"alphaName":        req.Username,
			"appsRelease":      "E920",
			"country":          " ",
			"username":         req.Username,
		},
		"userAuthorized":        false,
		"version":               "jdesim",
		"aisSessionCookie":      "",
		"adminAuthorized":       false,
		"passwordAboutToExpire": -1,
	})
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Token string `json:"token"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	if req.Token == "" {
		req.Token = r.Header.Get("jde-AIS-Auth")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess, ok := s.sessions[req.Token]; !ok || sess.node != nodeOf(r).name {
		s.stats.InvalidTokens++
		writeError(w, 444, "Invalid token", "com.oracle.e1.jdemf.JDERestServiceException")
		return
	}
	delete(s.sessions, req.Token)
	for rid, rs := range s.resultSets {
		if rs.token == req.Token {
			delete(s.resultSets, rid)
		}
	}
	s.stats.Logouts++
	writeJSON(w, http.StatusOK, map[string]string{"message": "Logged out"})
}

// authenticate finds the request's live session, or answers 444 and
// returns nil. The caller must hold s.mu. The token comes from the
// jde-AIS-Auth header or, as AIS also accepts, the token query parameter
// of a next link; the device header must match the device the session was
// opened for.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) *session {
	token := r.Header.Get("jde-AIS-Auth")
	if token == "" {
		token = r.URL.Query().Get("token")
	}
	sess, ok := s.sessions[token]
	if ok && s.now().Sub(sess.loggedInAt) >= s.opts.SessionLifetime {
		delete(s.sessions, token)
		ok = false
	}
	if ok && sess.device != "" && r.Header.Get("jde-AIS-Auth-Device") != sess.device {
		ok = false
	}
	if ok && sess.node != nodeOf(r).name {
		// Another server of the deployment never issued this token.
		s.stats.WrongNode++
		ok = false
	}
	if !ok {
		s.stats.InvalidTokens++
		writeError(w, 444, "Invalid token", "com.oracle.e1.jdemf.JDERestServiceException")
		return nil
	}
	return sess
}

// ExpireSessions ends every session as if its lifetime had run out; open
// result sets stay, but can no longer be reached with the old tokens.
func (s *Server) ExpireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions = map[string]*session{}
}
