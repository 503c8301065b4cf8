package jde

import (
	"context"
	"fmt"
	"net/url"
)

const pathOrchestrator = "/jderest/v3/orchestrator/"

// Orchestrate runs the AIS orchestration name with the inputs in (a JSON
// object of input names) and decodes its outputs into out.
//
// Transient failures are retried, so only orchestrations that are
// idempotent (such as ml-connector's, which key every write on an external
// reference) may be run through it.
func (c *Client) Orchestrate(ctx context.Context, name string, in, out any) error {
	if !isIdent(name) {
		return fmt.Errorf("%w: orchestration name %q", ErrInvalid, name)
	}
	return c.call(ctx, "orchestrator "+name, pathOrchestrator+url.PathEscape(name), in, out)
}
