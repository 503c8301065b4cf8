package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ml-connector/ml-connector/services/payment-orchestrator/operator"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/settlement"
)

// payouts lists GoCardless payouts (one bank line each) or shows one with
// the invoices it settled and its items, unmatched ones marked.
func (c *cli) payouts(ctx context.Context, r *settlement.Reader, verb string, args []string) error {
	fs := flag.NewFlagSet("payouts "+verb, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	asJSON := fs.Bool("json", false, "print JSON (the console's names)")
	var from, to dateFlag
	fs.Var(&from, "from", "first arrival date, YYYY-MM-DD")
	fs.Var(&to, "to", "last arrival date, YYYY-MM-DD")
	conn := fs.String("connection", "", "a GoCardless connection, or an ERP connection whose invoices the payouts settled")
	state := fs.String("state", "", "fetched, mismatch, posting, posted, refused or nothing_to_post")
	limit := fs.Int("limit", 100, fmt.Sprintf("at most this many payouts (1 to %d)", settlement.MaxPayouts))
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	switch verb {
	case "list":
		if len(pos) != 0 {
			return errors.New("usage: mlcctl payouts list [--from DATE] [--to DATE] [--connection NAME] [--state STATE] [--limit N] [--json]")
		}
		if *limit < 1 {
			return fmt.Errorf("--limit %d: give 1 to %d", *limit, settlement.MaxPayouts)
		}
		list, err := r.ListPayouts(ctx, settlement.PayoutQuery{From: from.t, To: to.t, Connection: *conn, State: *state, Limit: *limit})
		if err != nil {
			return err
		}
		if *asJSON {
			return c.json(list)
		}
		w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "PAYOUT\tBANK REFERENCE\tARRIVAL\tAMOUNT\tFEES\tCURRENCY\tSTATE\tINVOICES\tITEMS\tUNMATCHED")
		for _, p := range list {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", p.ID, p.BankReference, p.ArrivalDate, p.Amount.Decimal,
				p.Fees.Decimal, p.Currency, stateText(p), p.Invoices, p.Items, unmatchedText(p.Unmatched))
		}
		return w.Flush()
	case "show":
		if len(pos) != 1 {
			return errors.New("usage: mlcctl payouts show PAYOUT-ID|BANK-REFERENCE [--json]")
		}
		d, err := r.ShowPayout(ctx, pos[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return c.json(d)
		}
		return c.printPayout(d)
	}
	return fmt.Errorf("unknown command payouts %s", verb)
}

// payoutsRepost queues again the deposits of a payout that an ERP refused
// or whose posting ran out of retries; the orchestrator posts them.
func (c *cli) payoutsRepost(ctx context.Context, desk *operator.Desk, r *settlement.Reader, args []string) error {
	fs := flag.NewFlagSet("payouts repost", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	note := fs.String("note", "", "why, for the audit log")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: mlcctl payouts repost PAYOUT-ID|BANK-REFERENCE [--note TEXT]")
	}
	d, err := r.ShowPayout(ctx, pos[0]) // a bank reference names its payout too
	if err != nil {
		return err
	}
	n, err := desk.RepostPayout(ctx, d.ID, actor(), *note)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "payout %s: %d deposit(s) queued again for the ERP under their own keys; the orchestrator posts them\n", d.ID, n)
	return nil
}

func stateText(p settlement.Payout) string {
	if p.State == "mismatch" {
		return "MISMATCH (items differ by " + p.Difference + ")"
	}
	return p.State
}

func unmatchedText(n int) string {
	if n == 0 {
		return "0"
	}
	return strconv.Itoa(n) + " !"
}

func (c *cli) printPayout(d settlement.PayoutDetail) error {
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	for _, row := range [][2]string{
		{"payout", d.ID + " (" + d.GCConnection + ")"},
		{"bank reference", d.BankReference},
		{"arrival date", d.ArrivalDate},
		{"amount", d.Amount.Decimal + " " + d.Currency},
		{"fees", d.Fees.Decimal + " " + d.Currency},
		{"state", stateText(d.Payout) + ", GoCardless: " + d.GCStatus},
		{"items", fmt.Sprintf("%d, %d unmatched", d.Items, d.Unmatched)},
	} {
		fmt.Fprintf(w, "%s:\t%s\n", row[0], row[1])
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, "\nINVOICES SETTLED")
	w = tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CONNECTION\tCOMPANY\tINVOICE\tNUMBER\tCUSTOMER\tNET\tERP DEPOSIT")
	for _, s := range d.SettledInvoices {
		posting := s.Posting
		if posting == "" {
			posting = "none"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Connection, s.Company, s.InvoiceID, s.InvoiceNo, s.CustomerID, s.Net, posting)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, "\nITEMS (! = tied to no invoice or refund of ours)")
	w = tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "\t#\tTYPE\tAMOUNT\tINVOICE\tLINKS")
	for _, it := range d.ItemList {
		mark, invoice := " ", it.Connection+"/"+it.Company+"/"+it.InvoiceID
		if !it.Matched {
			mark, invoice = "!", "unmatched"
		}
		links := make([]string, 0, len(it.Links))
		for _, k := range []string{"payment", "refund", "mandate"} {
			if v := it.Links[k]; v != "" {
				links = append(links, k+"="+v)
			}
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", mark, it.Seq, it.Type, it.Amount, invoice, strings.Join(links, " "))
	}
	if d.ItemsShown < d.Items {
		fmt.Fprintf(w, "\t\t… %d more items not shown (--json shows the same %d)\n", d.Items-d.ItemsShown, d.ItemsShown)
	}
	return w.Flush()
}

// monthEnd writes the month-end report as CSV or JSON.
func (c *cli) monthEnd(ctx context.Context, r *settlement.Reader, args []string) error {
	fs := flag.NewFlagSet("report month-end", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var from, to dateFlag
	fs.Var(&from, "from", "first day of the period, YYYY-MM-DD (payouts by arrival date)")
	fs.Var(&to, "to", "last day of the period, YYYY-MM-DD")
	conn := fs.String("connection", "", "an ERP or GoCardless connection; all when empty")
	format := fs.String("format", "csv", "csv or json")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || from.t.IsZero() || to.t.IsZero() {
		return errors.New("usage: mlcctl report month-end --from YYYY-MM-DD --to YYYY-MM-DD [--connection NAME] [--format csv|json]")
	}
	if *format != "csv" && *format != "json" {
		return fmt.Errorf("--format %q: csv or json", *format)
	}
	rep, err := r.MonthEnd(ctx, settlement.ReportQuery{From: from.t, To: to.t, Connection: *conn})
	if err != nil {
		return err
	}
	if *format == "json" {
		return c.json(rep)
	}
	if err := rep.WriteCSV(c.stdout); err != nil {
		return err
	}
	// The CSV is for a spreadsheet; what does not add up goes to stderr.
	for _, u := range rep.Unbalanced {
		fmt.Fprintln(c.stderr, "warning:", u)
	}
	return nil
}

// dateFlag is a YYYY-MM-DD flag.
type dateFlag struct{ t time.Time }

func (d *dateFlag) String() string {
	if d.t.IsZero() {
		return ""
	}
	return d.t.Format(time.DateOnly)
}

func (d *dateFlag) Set(s string) error {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return fmt.Errorf("%q is not a date (YYYY-MM-DD)", s)
	}
	d.t = t
	return nil
}
