package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/connectors/jde"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/retry"
)

// errStopAfterPage ends a read after its first page: a ping reads one.
var errStopAfterPage = errors.New("one page read")

// connectionsPing authenticates against each connection (or the named
// ones) and reads one page, saying plainly what is wrong when it fails.
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
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		detail, err := ping(pctx, store, conn)
		cancel()
		result := "ok"
		if err != nil {
			failed++
			result, detail = "FAILED", explain(err)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", conn.Name, conn.Kind, result, detail)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d connection(s) failed", failed)
	}
	return nil
}

// Pings fail fast: one retry, short waits.
var pingBackoff = retry.Backoff{Base: 100 * time.Millisecond, Max: time.Second, Attempts: 2}

func ping(ctx context.Context, store *connections.Store, conn connections.Connection) (string, error) {
	vals, err := store.Secrets(ctx, conn.Name)
	if err != nil {
		return "", err
	}
	baseURL, _ := conn.Settings["base_url"].(string)
	switch conn.Kind {
	case connections.KindGoCardless:
		client, err := gocardless.New(baseURL, vals["access_token"], gocardless.WithBackoff(pingBackoff))
		if err != nil {
			return "", err
		}
		page, err := client.ListCreditors(ctx, gocardless.ListParams{Limit: 50})
		if err != nil {
			return "", err
		}
		ids := make([]string, 0, len(page.Items))
		for _, cr := range page.Items {
			ids = append(ids, cr.ID)
		}
		return "creditors " + strings.Join(ids, ", "), nil
	case connections.KindIFS:
		s, err := ifscloud.ParseSettings(conn.Settings)
		if err != nil {
			return "", err
		}
		client, err := ifscloud.New(conn.Name, s, vals["client_secret"], ifscloud.Options{Backoff: pingBackoff})
		if err != nil {
			return "", err
		}
		company := conn.CompanyCodes()[0]
		var n int
		err = client.Invoices(ctx, company, ifscloud.Watermark{}, func(p ifscloud.InvoicePage) error {
			n = len(p.Invoices)
			return errStopAfterPage
		})
		if err != nil && !errors.Is(err, errStopAfterPage) {
			return "", err
		}
		return fmt.Sprintf("token issued; company %s: %d invoices ready on the first page", company, n), nil
	case connections.KindJDE:
		s, err := jde.ParseSettings(conn.Settings)
		if err != nil {
			return "", err
		}
		cfg := s.ClientConfig(conn.Name, vals["password"])
		client, err := jde.New(cfg)
		if err != nil {
			return "", err
		}
		defer client.Close(context.WithoutCancel(ctx))
		if err := client.Ping(ctx); err != nil {
			return "", err
		}
		return "session opened and data service answered", nil
	}
	return "", fmt.Errorf("unknown kind %s", conn.Kind)
}

// explain turns an error into what an operator should check.
func explain(err error) string {
	var apiErr *gocardless.APIError
	var netErr *net.OpError
	switch {
	case errors.As(err, &netErr) || strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "no such host"):
		return "host unreachable: check base_url and the network (" + err.Error() + ")"
	case errors.Is(err, ifscloud.ErrUnauthorized), errors.Is(err, jde.ErrUnauthorized),
		errors.As(err, &apiErr) && apiErr.Code == http.StatusUnauthorized:
		return "credentials refused: check the client id, user name and the stored secret (" + err.Error() + ")"
	case errors.As(err, &apiErr) && apiErr.Code == http.StatusForbidden:
		return "missing permission: the credentials are valid but may not read this (" + err.Error() + ")"
	case errors.Is(err, jde.ErrUnavailable), errors.Is(err, ifscloud.ErrUnavailable), errors.Is(err, gocardless.ErrUnavailable):
		return "host unreachable or down: check base_url and the network (" + err.Error() + ")"
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer in time: " + err.Error()
	}
	return err.Error()
}
