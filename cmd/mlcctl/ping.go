package main

import (
	"context"
	"fmt"
	"slices"
	"text/tabwriter"

	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/services/console/ping"
)

// connectionsPing authenticates against each connection (or the named
// ones) and reads one page, saying plainly what is wrong when it fails.
// The checks are package ping's, which the console's Ping button runs too.
func (c *cli) connectionsPing(ctx context.Context, store *connections.Store, names []string) error {
	all, err := store.List(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tKIND\tRESULT\tDETAIL")
	failed := 0
	for _, conn := range all {
		if len(names) > 0 && !slices.Contains(names, conn.Name) {
			continue
		}
		res := ping.Connection(ctx, store, conn)
		result := "ok"
		if !res.OK {
			failed++
			result = "FAILED"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", conn.Name, conn.Kind, result, res.Summary())
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d connection(s) failed", failed)
	}
	return nil
}
