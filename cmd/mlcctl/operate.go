package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/ml-connector/ml-connector/platform/money"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/operator"
)

// exceptionsList prints the exceptions of a status (default open).
func (c *cli) exceptionsList(ctx context.Context, desk *operator.Desk, args []string) error {
	fs := flag.NewFlagSet("exceptions list", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	status := fs.String("status", "open", "open, replayed, escalated, resolved or all")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *status == "all" {
		*status = ""
	}
	list, err := desk.Exceptions(ctx, *status)
	if err != nil {
		return err
	}
	if *asJSON {
		return c.json(list)
	}
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSTATUS\tKIND\tWHAT\tREASON\tSINCE")
	for _, e := range list {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s %s\t%s\t%s\n", e.ID, e.Status, e.Kind, e.AggregateType, e.AggregateID,
			e.Reason, e.CreatedAt.UTC().Format("2006-01-02 15:04"))
	}
	return w.Flush()
}

// exceptionsEscalate escalates one exception by id.
func (c *cli) exceptionsEscalate(ctx context.Context, desk *operator.Desk, args []string) error {
	fs := flag.NewFlagSet("exceptions escalate", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	note := fs.String("note", "", "why, and to whom (recorded in the audit log)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: mlcctl exceptions escalate ID --note TEXT")
	}
	id, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil {
		return fmt.Errorf("exception id %q is not a number", pos[0])
	}
	if err := desk.Escalate(ctx, id, actor(), *note); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "exception %d escalated\n", id)
	return nil
}

// collections handles show, replay and escalate of one ERP invoice.
func (c *cli) collections(ctx context.Context, desk *operator.Desk, verb string, args []string) error {
	fs := flag.NewFlagSet("collections "+verb, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	note := fs.String("note", "", "for escalate: why, and to whom")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 3 {
		return fmt.Errorf("usage: mlcctl collections %s ERP-CONNECTION COMPANY INVOICE", verb)
	}
	conn, company, invoice := pos[0], pos[1], pos[2]
	switch verb {
	case "show":
		col, err := desk.Show(ctx, conn, company, invoice)
		if err != nil {
			return err
		}
		if *asJSON {
			return c.json(col)
		}
		return c.printCollection(col)
	case "replay":
		res, err := desk.Replay(ctx, conn, company, invoice, actor())
		if err != nil {
			return err
		}
		if *asJSON {
			return c.json(res)
		}
		fmt.Fprintf(c.stdout, "replayed %s/%s/%s: %s, payment %s (attempt %d)\n", conn, company, invoice, res.How, res.PaymentID, res.Attempt)
		return nil
	case "escalate":
		ids, err := desk.EscalateCollection(ctx, conn, company, invoice, actor(), *note)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "escalated %s/%s/%s: exceptions %v\n", conn, company, invoice, ids)
		return nil
	}
	return fmt.Errorf("unknown command collections %s", verb)
}

func (c *cli) printCollection(col operator.Collection) error {
	amount, err := money.FromMinor(col.AmountMinor, col.Currency)
	if err != nil {
		amount = strconv.FormatInt(col.AmountMinor, 10) + " (minor units)"
	}
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	for _, row := range [][2]string{
		{"invoice", fmt.Sprintf("%s/%s/%s (%s)", col.Connection, col.Company, col.InvoiceID, col.InvoiceNo)},
		{"customer", col.CustomerID},
		{"amount", amount + " " + col.Currency},
		{"kind", col.Kind},
		{"state", col.State},
		{"attempts", strconv.Itoa(col.Attempts)},
		{"payment", col.PaymentID + col.Subscription},
		{"charge date", col.ChargeDate},
		{"failure", col.FailureCause + " " + col.ReasonCode + " " + col.Description},
		{"audit trail verified", strconv.FormatBool(col.AuditVerified)},
	} {
		fmt.Fprintf(w, "%s:\t%s\n", row[0], row[1])
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, "\nAUDIT TRAIL")
	w = tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	for _, r := range col.AuditTrail {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", r.Seq, r.OccurredAt.UTC().Format(time.RFC3339), r.Actor, r.Action, r.Payload)
	}
	if len(col.OpenProblems) > 0 {
		fmt.Fprintln(w, "\nOPEN EXCEPTIONS")
		for _, e := range col.OpenProblems {
			fmt.Fprintf(w, "%d\t%s\t%s\n", e.ID, e.Kind, e.Reason)
		}
	}
	return w.Flush()
}

func (c *cli) json(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parseInterleaved parses flags wherever they stand among the positional
// arguments ("escalate 7 --note x" as well as "escalate --note x 7"), which
// the flag package alone stops at.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
