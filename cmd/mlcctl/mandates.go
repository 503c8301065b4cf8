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
)

// mandates lists the customers asked to authorise a mandate through a
// GoCardless billing request (with the link AR can send them), or resends
// one whose link expired or whose request was cancelled.
func (c *cli) mandates(ctx context.Context, desk *operator.Desk, verb string, args []string) error {
	fs := flag.NewFlagSet("mandates "+verb, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	state := fs.String("state", "awaiting_payer", "awaiting_payer, requesting, fulfilled, cancelled, expired or all")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if verb == "resend" {
		if len(pos) != 1 {
			return errors.New("usage: mlcctl mandates resend ID")
		}
		id, err := strconv.ParseInt(pos[0], 10, 64)
		if err != nil {
			return fmt.Errorf("mandate request id %q is not a number", pos[0])
		}
		mr, err := desk.ResendMandateRequest(ctx, id, actor())
		if err != nil {
			return err
		}
		if *asJSON {
			return c.json(mr)
		}
		fmt.Fprintf(c.stdout, "mandate request %d: new link %s (expires %s)\n", mr.ID, mr.AuthorisationURL,
			mr.FlowExpiresAt.UTC().Format("2006-01-02 15:04"))
		if r := mr.Reparked; r != nil && (len(r.Invoices) > 0 || len(r.Left) > 0) {
			fmt.Fprintf(c.stdout, "%d invoice(s) waiting for the payer again, their exceptions resolved: %s\n",
				len(r.Invoices), strings.Join(r.Invoices, ", "))
			if len(r.Left) > 0 {
				fmt.Fprintf(c.stdout, "exceptions left open (the ERP must publish those invoices again): %v\n", r.Left)
			}
		}
		return nil
	}
	if len(pos) != 0 {
		return errors.New("usage: mlcctl mandates list [--state STATE] [--json]")
	}
	if *state == "all" {
		*state = ""
	}
	list, err := desk.MandateRequests(ctx, *state)
	if err != nil {
		return err
	}
	if *asJSON {
		return c.json(list)
	}
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSTATE\tERP\tCOMPANY\tCUSTOMER\tBILLING REQUEST\tLINK\tEXPIRES\tEMAILED\tSINCE")
	for _, mr := range list {
		expires := ""
		if mr.FlowExpiresAt.Year() > 1 {
			expires = mr.FlowExpiresAt.UTC().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", mr.ID, mr.State, mr.Key.ERP, mr.Key.Company, mr.Key.CustomerID,
			mr.BillingRequestID, mr.AuthorisationURL, expires, mr.Notified, mr.CreatedAt.UTC().Format(time.DateOnly))
	}
	return w.Flush()
}
