package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/services/console/internal/views"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/operator"
)

// ages are the choices of the age filter.
var ages = []struct {
	Value string
	Label string
	D     time.Duration
}{
	{"", "any age", 0},
	{"1h", "older than 1 hour", time.Hour},
	{"24h", "older than 1 day", 24 * time.Hour},
	{"168h", "older than 7 days", 7 * 24 * time.Hour},
	{"720h", "older than 30 days", 30 * 24 * time.Hour},
}

// reasons are the kinds the reason filter offers; any other text is
// matched too (a GoCardless failure cause such as insufficient_funds).
var reasons = []string{"payment_failed", "payment_cancelled", "payment_charged_back", "payment_exception",
	"invalid_invoice", "invalid_event", "unroutable", "gocardless_refused", "mandate_refused",
	"erp_posting_refused", "dead_letter", "operator_escalation", "operator_resolution",
	"mandate_ended", "mandate_request_expired", "mandate_not_authorised", "mandate_request_cancelled", "mandate_request_failed",
	"mandate_unusable", "no_bank_details", "payout_mismatch", "payout_duplicate_payment", "payout_unmatched_items", "payout_fractional_amount",
	"payout_too_large", "payout_unreadable", "erp_record_invalid"}

type exceptionsData struct {
	views.Page
	Connections []string `json:"-"`
	Ages        any      `json:"-"`
	Reasons     []string `json:"-"`
	Statuses    []string `json:"-"`
	Back        string   `json:"-"`
	Next, Prev  string   `json:"-"`
	PrevText    string   `json:"-"`
	Deep        bool     `json:"-"` // a page after a cursor: its position is not counted
	CanAct      bool     `json:"-"`
	TotalText   string   `json:"-"`
	Shown       [2]int   `json:"-"`
}

func (s *Server) exceptions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := views.Filter{Connection: q.Get("connection"), Company: q.Get("company"), Reason: q.Get("reason"), Status: q.Get("status")}
	f.Limit, _ = strconv.Atoi(q.Get("limit"))
	f.Offset, _ = strconv.Atoi(q.Get("offset"))
	if a := q.Get("age"); a != "" {
		d, err := time.ParseDuration(a)
		if err != nil {
			s.problem(w, r, http.StatusBadRequest, "age: "+err.Error())
			return
		}
		f.OlderThan = d
	}
	if b := q.Get("before"); b != "" || q.Get("before_ref") != "" {
		t, err := time.Parse(time.RFC3339Nano, b)
		if err != nil {
			s.problem(w, r, http.StatusBadRequest, "before: a time as RFC 3339")
			return
		}
		f.Before = &views.Cursor{Since: t, Ref: q.Get("before_ref")}
	}
	if err := f.Check(); err != nil {
		s.problem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	pg, err := s.views.Queue(r.Context(), f)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	data := exceptionsData{Page: pg, Ages: ages, Reasons: reasons, Statuses: views.Statuses, Back: r.URL.RequestURI(),
		CanAct: who(r).user.Role.Allows("operator"), TotalText: views.Join(pg.Totals)}
	if conns, err := s.conns.List(r.Context()); err == nil {
		for _, c := range conns {
			if c.Kind != connections.KindGoCardless {
				data.Connections = append(data.Connections, c.Name)
			}
		}
	}
	data.Shown = [2]int{f.Offset + 1, f.Offset + len(pg.Items)}
	data.Deep = f.Before != nil
	// Older pages by keyset (cheap however deep); newer ones by going
	// back to the newest, or by the offset that was asked for.
	if pg.Next != nil {
		next := cloneQuery(q)
		next.Del("offset")
		next.Set("before", pg.Next.Since.UTC().Format(time.RFC3339Nano))
		next.Set("before_ref", pg.Next.Ref)
		data.Next = "/exceptions?" + next.Encode()
	}
	switch {
	case f.Before != nil:
		newest := cloneQuery(q)
		newest.Del("before")
		newest.Del("before_ref")
		data.Prev, data.PrevText = "/exceptions?"+newest.Encode(), "Newest"
	case f.Offset > 0:
		prev := cloneQuery(q)
		prev.Set("offset", strconv.Itoa(max(0, f.Offset-f.Limit)))
		data.Prev, data.PrevText = "/exceptions?"+prev.Encode(), "Newer"
	}
	s.render(w, r, http.StatusOK, "exceptions", "Exceptions", data)
}

// maxNote bounds an operator's note.
const maxNote = 2000

// actionForm reads and checks the action, note and items of a request.
func actionForm(r *http.Request, action string) (note string, refs []string, err error) {
	if err := r.ParseForm(); err != nil {
		return "", nil, errors.New("the form could not be read")
	}
	note = strings.TrimSpace(r.PostFormValue("note"))
	switch action {
	case "replay":
	case "escalate", "resolve":
		if note == "" {
			return "", nil, fmt.Errorf("%s needs a note saying why and to whom", action)
		}
	default:
		return "", nil, fmt.Errorf("unknown action %q (replay, escalate or resolve)", action)
	}
	if utf8.RuneCountInString(note) > maxNote || !utf8.ValidString(note) {
		return "", nil, fmt.Errorf("the note must be valid text of at most %d characters", maxNote)
	}
	refs = r.PostForm["ref"]
	if len(refs) == 0 {
		return "", nil, errors.New("choose at least one item")
	}
	if len(refs) > views.MaxPageSize {
		return "", nil, fmt.Errorf("at most %d items at once", views.MaxPageSize)
	}
	return note, refs, nil
}

// exceptionAction replays, escalates or resolves one item.
func (s *Server) exceptionAction(w http.ResponseWriter, r *http.Request) {
	action := r.PathValue("action")
	note, refs, err := actionForm(r, action)
	if err == nil && len(refs) != 1 {
		err = errors.New("one item at a time here; use the bulk actions for more")
	}
	if err != nil {
		s.problem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	items, err := s.views.Items(r.Context(), refs)
	if err != nil {
		s.problem(w, r, http.StatusNotFound, err.Error())
		return
	}
	res := s.act(r.Context(), who(r), action, note, items[0])
	if res.Error != "" {
		s.problem(w, r, http.StatusConflict, res.Error)
		return
	}
	s.done(w, r, res.Message, res)
}

// Result is what an action did to one item.
type Result struct {
	Ref     string `json:"ref"`
	Action  string `json:"action"`
	OK      bool   `json:"ok"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

// act carries out action on it through the operator desk, under the
// user's name.
func (s *Server) act(ctx context.Context, p principal, action, note string, it views.Item) Result {
	res := Result{Ref: it.Ref, Action: action}
	defer s.views.Forget()
	what := it.Document
	if what == "" {
		what = it.Subject
	}
	var err error
	switch action {
	case "replay":
		if !it.Replayable {
			err = fmt.Errorf("%s cannot be replayed: only a failed or cancelled payment can (it is %s, %s)", what, it.Kind, it.Status)
			break
		}
		var rep operator.Replayed
		rep, err = s.desk.Replay(ctx, it.Connection, it.Company, it.Document, p.actor())
		res.Message = fmt.Sprintf("Replayed %s: %s, payment %s (attempt %d).", what, rep.How, rep.PaymentID, rep.Attempt)
	case "escalate", "resolve":
		switch {
		case it.ExceptionID != 0 && action == "escalate":
			err = s.desk.Escalate(ctx, it.ExceptionID, p.actor(), note)
		case it.ExceptionID != 0:
			err = s.desk.Resolve(ctx, it.ExceptionID, p.actor(), note)
		case action == "escalate":
			_, err = s.desk.EscalateCollection(ctx, it.Connection, it.Company, it.Document, p.actor(), note)
		default:
			_, err = s.desk.ResolveCollection(ctx, it.Connection, it.Company, it.Document, p.actor(), note)
		}
		res.Message = fmt.Sprintf("%s %s with your note.", map[string]string{"escalate": "Escalated", "resolve": "Resolved"}[action], what)
	}
	if err != nil {
		s.log.WarnContext(ctx, "action failed", "user", p.user.Name, "action", action, "item", it.Ref, "error", err)
		res.Message, res.Error = "", fmt.Sprintf("%s %s: %s", action, what, plain(err))
		return res
	}
	s.log.InfoContext(ctx, "action", "user", p.user.Name, "action", action, "item", it.Ref)
	res.OK = true
	return res
}

// plain is an operator error as a user can read it.
func plain(err error) string {
	switch {
	case errors.Is(err, operator.ErrNotReplayable):
		return err.Error()
	case errors.Is(err, operator.ErrNotFound):
		return "not found (it may have changed meanwhile): " + err.Error()
	}
	return err.Error()
}

// bulk is a bulk action as confirmed: what will happen, in words.
type bulk struct {
	Action   string         `json:"action"`
	Note     string         `json:"note,omitempty"`
	Acting   []views.Item   `json:"items"`
	Skipped  []views.Item   `json:"skipped"`
	Totals   []views.Amount `json:"totals"`
	Summary  string         `json:"summary"`
	Back     string         `json:"-"`
	Refs     []string       `json:"-"`
	Changed  bool           `json:"changed,omitempty"`
	Results  []Result       `json:"results,omitempty"`
	Complete bool           `json:"-"`
}

// plan says exactly what a bulk action will do to the items as they are
// now: the summary names the count and the exact totals per currency.
func (s *Server) plan(ctx context.Context, action, note string, refs []string) (bulk, error) {
	items, err := s.views.Items(ctx, refs)
	if err != nil {
		return bulk{}, err
	}
	b := bulk{Action: action, Note: note, Acting: []views.Item{}, Skipped: []views.Item{}, Refs: refs}
	var amounts []views.Amount
	for _, it := range items {
		ok := it.Status == "open" || it.Status == "escalated"
		if action == "replay" {
			ok = it.Replayable
		}
		if !ok {
			b.Skipped = append(b.Skipped, it)
			continue
		}
		b.Acting = append(b.Acting, it)
		if it.Amount != nil {
			amounts = append(amounts, *it.Amount)
		}
	}
	if b.Totals, err = views.Sum(amounts); err != nil {
		return bulk{}, err
	}
	n := len(b.Acting)
	switch action {
	case "replay":
		b.Summary = fmt.Sprintf("retry %d %s totalling %s", n, plural(n, "payment", "payments"), views.Join(b.Totals))
	case "escalate":
		b.Summary = fmt.Sprintf("escalate %d %s (%s) with the note %q", n, plural(n, "item", "items"), views.Join(b.Totals), note)
	case "resolve":
		b.Summary = fmt.Sprintf("resolve %d %s (%s) with the note %q", n, plural(n, "item", "items"), views.Join(b.Totals), note)
	}
	if len(b.Skipped) > 0 {
		b.Summary += fmt.Sprintf("; %d selected %s cannot be %s and will be left as %s",
			len(b.Skipped), plural(len(b.Skipped), "item", "items"), map[string]string{"replay": "replayed", "escalate": "escalated", "resolve": "resolved"}[action],
			plural(len(b.Skipped), "it is", "they are"))
	}
	return b, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// bulkPreview shows what a bulk action would do and asks to confirm it.
func (s *Server) bulkPreview(w http.ResponseWriter, r *http.Request) {
	action := r.PostFormValue("action")
	note, refs, err := actionForm(r, action)
	if err != nil {
		s.problem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	b, err := s.plan(r.Context(), action, note, refs)
	if err != nil {
		s.problem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	b.Back = localPath(r.PostFormValue("back"), "/exceptions")
	s.render(w, r, http.StatusOK, "confirm", "Confirm", b)
}

// bulkConfirm carries out a confirmed bulk action, unless what it would do
// changed since the confirmation was shown: then it shows the new plan
// and does nothing.
func (s *Server) bulkConfirm(w http.ResponseWriter, r *http.Request) {
	action := r.PostFormValue("action")
	note, refs, err := actionForm(r, action)
	if err != nil {
		s.problem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	b, err := s.plan(r.Context(), action, note, refs)
	if err != nil {
		s.problem(w, r, http.StatusConflict, "nothing was done: the selected items changed since you reviewed them ("+err.Error()+")")
		return
	}
	b.Back = localPath(r.PostFormValue("back"), "/exceptions")
	if confirmed := r.PostFormValue("summary"); confirmed != b.Summary {
		b.Changed = true
		s.render(w, r, http.StatusConflict, "confirm", "Confirm again", b)
		return
	}
	ok := 0
	var failed []string
	for _, it := range b.Acting {
		res := s.act(r.Context(), who(r), action, note, it)
		b.Results = append(b.Results, res)
		if res.OK {
			ok++
		} else {
			failed = append(failed, res.Error)
		}
	}
	msg := fmt.Sprintf("Done: %d of %d succeeded (%s).", ok, len(b.Acting), b.Summary)
	if len(failed) > 0 {
		msg += " Failed: " + strings.Join(failed, "; ")
	}
	b.Complete = true
	s.done(w, r, msg, b)
}

func cloneQuery(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = append([]string(nil), v...)
	}
	return out
}
