package jde_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/jde"
	"github.com/ml-connector/ml-connector/connectors/jde/jdesim"
	"github.com/ml-connector/ml-connector/platform/retry"
	"github.com/ml-connector/ml-connector/platform/secrets"
)

// deploymentEnv is a two-node AIS deployment behind a cookie-affinity
// balancer, and a client of the balancer that may follow next links to
// the given nodes.
func deploymentEnv(t *testing.T, nodes func(d *jdesim.Deployment) []string) (*env, *jdesim.Deployment) {
	t.Helper()
	clock := jdesim.NewClock(start)
	sim := jdesim.New(jdesim.Options{Clock: clock, Password: password})
	d, err := sim.ServeDeployment(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	c, err := jde.New(jde.Config{Name: "jde-lb", BaseURL: d.URL, Nodes: nodes(d), Username: "JDE", Password: secrets.NewValue(password),
		Now: clock.Now, Backoff: retry.Backoff{Base: time.Millisecond, Max: time.Millisecond, Attempts: 2},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{sim: sim, client: c, clock: clock}
	e.addInvoices(230)
	return e, d
}

func TestClientThroughLoadBalancer(t *testing.T) {
	e, d := deploymentEnv(t, func(d *jdesim.Deployment) []string { return d.Nodes })
	ctx := context.Background()
	for range 3 {
		got, err := e.docs(ctx, jde.Query{PageSize: 50})
		if err != nil || len(got) != 230 {
			t.Fatalf("browse through the balancer: %d rows, %v", len(got), err)
		}
	}
	var out map[string]any
	if err := e.client.Orchestrate(ctx, "MLC_Unknown", map[string]string{}, &out); !errors.Is(err, jde.ErrNotFound) {
		t.Fatalf("orchestration through the balancer: %v", err)
	}
	// One login, kept on its node by the affinity cookie; next links
	// followed on the node that holds the result set.
	st := e.sim.Stats()
	if st.Logins != 1 || st.InvalidTokens != 0 || st.WrongNode != 0 || st.NextPages != 3*4 {
		t.Fatalf("stats = %+v", st)
	}
	if _, cookies := d.Balancer.Routed(); cookies != 1 {
		t.Fatalf("affinity cookies handed out = %d, want 1 (the jar keeps it)", cookies)
	}
}

// A next link to a host that is neither the base URL nor a configured node
// is not followed: the token never goes there.
func TestNextLinkToUnlistedNodeIsRefused(t *testing.T) {
	e, _ := deploymentEnv(t, func(*jdesim.Deployment) []string { return nil })
	_, err := e.docs(context.Background(), jde.Query{PageSize: 50})
	if !errors.Is(err, jde.ErrResultSetLost) || !strings.Contains(err.Error(), "ais_nodes") {
		t.Fatalf("err = %v", err)
	}
	if st := e.sim.Stats(); st.NextPages != 0 || st.TokensInURL != 0 {
		t.Fatalf("the node was called: %+v", st)
	}
}
