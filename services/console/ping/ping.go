// Package ping checks that a registered connection works: it signs in to
// the system with the stored credentials and reads one page, step by step,
// and says in plain words what to check when a step fails. mlcctl
// connections ping and the console's Ping button both run it. It only
// reads; secrets are opened for the call and never put in a result.
package ping

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/connectors/jde"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/retry"
)

// Step is one check and what it found.
type Step struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Result is the outcome of pinging one connection.
type Result struct {
	Connection string `json:"connection"`
	Kind       string `json:"kind"`
	OK         bool   `json:"ok"`
	Steps      []Step `json:"steps"`
	// Problem says what to check when a step failed; empty when OK.
	Problem string `json:"problem,omitempty"`
}

// Summary is the result on one line: the steps' findings, or the problem.
func (r Result) Summary() string {
	if !r.OK {
		return r.Problem
	}
	details := make([]string, 0, len(r.Steps))
	for _, s := range r.Steps {
		details = append(details, s.Detail)
	}
	return strings.Join(details, "; ")
}

// Timeout bounds one connection's ping.
const Timeout = 20 * time.Second

// maxCompanies bounds how many of a connection's companies are read.
const maxCompanies = 10

// errStopAfterPage ends a read after its first page: a ping reads one.
var errStopAfterPage = errors.New("one page read")

// Pings fail fast: one retry, short waits.
var backoff = retry.Backoff{Base: 100 * time.Millisecond, Max: time.Second, Attempts: 2}

// Connection pings conn with the secrets from store.
func Connection(ctx context.Context, store *connections.Store, conn connections.Connection) Result {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	res := Result{Connection: conn.Name, Kind: string(conn.Kind)}
	err := run(ctx, store, conn, func(name, detail string) {
		res.Steps = append(res.Steps, Step{Name: name, OK: true, Detail: detail})
	})
	if err != nil {
		res.Problem = Explain(err)
		res.Steps = append(res.Steps, Step{Name: "failed", Detail: res.Problem})
		return res
	}
	res.OK = true
	return res
}

func run(ctx context.Context, store *connections.Store, conn connections.Connection, step func(name, detail string)) error {
	vals, err := store.Secrets(ctx, conn.Name)
	if err != nil {
		return err
	}
	baseURL, _ := conn.Settings["base_url"].(string)
	switch conn.Kind {
	case connections.KindGoCardless:
		client, err := gocardless.New(baseURL, vals["access_token"], gocardless.WithBackoff(backoff))
		if err != nil {
			return err
		}
		page, err := client.ListCreditors(ctx, gocardless.ListParams{Limit: 50})
		if err != nil {
			return err
		}
		step("token accepted", "access token accepted")
		ids := make([]string, 0, len(page.Items))
		for _, cr := range page.Items {
			ids = append(ids, cr.ID)
		}
		if len(ids) == 0 {
			return errors.New("the account has no creditor: finish the GoCardless onboarding first")
		}
		step("creditor found", "creditors "+strings.Join(ids, ", "))
		return nil
	case connections.KindIFS:
		s, err := ifscloud.ParseSettings(conn.Settings)
		if err != nil {
			return err
		}
		client, err := ifscloud.New(conn.Name, s, vals["client_secret"], ifscloud.Options{Backoff: backoff})
		if err != nil {
			return err
		}
		for i, company := range conn.CompanyCodes() {
			if i == maxCompanies {
				break
			}
			var n int
			err = client.Invoices(ctx, company, ifscloud.Watermark{}, func(p ifscloud.InvoicePage) error {
				n = len(p.Invoices)
				return errStopAfterPage
			})
			if err != nil && !errors.Is(err, errStopAfterPage) {
				return err
			}
			if i == 0 {
				step("token obtained", "token issued")
			}
			step("invoices read", fmt.Sprintf("company %s: %d invoices ready on the first page", company, n))
		}
		return nil
	case connections.KindJDE:
		s, err := jde.ParseSettings(conn.Settings)
		if err != nil {
			return err
		}
		client, err := jde.New(s.ClientConfig(conn.Name, vals["password"]))
		if err != nil {
			return err
		}
		defer client.Close(context.WithoutCancel(ctx))
		if err := client.Ping(ctx); err != nil {
			return err
		}
		step("session opened", "session opened and data service answered")
		return nil
	}
	return fmt.Errorf("unknown kind %s", conn.Kind)
}

// Explain turns an error into what an operator should check.
func Explain(err error) string {
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
