// Package deadletter turns the messages in MLC_DLQ into exceptions an
// operator can see, list and act on: a dead letter is never just a message
// in a stream nobody reads.
package deadletter

import (
	"context"
	"encoding/base64"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
)

// Handler records each dead letter as an exception, once.
type Handler struct{ Ledger *ledger.Ledger }

// Handle is the bus handler for mlc.dlq.>.
func (h Handler) Handle(ctx context.Context, d *bus.Delivery) error {
	original := d.Header.Get(bus.HeaderDLQOriginalID)
	if original == "" {
		original = d.Header.Get(bus.HeaderDLQStream) + ":" + d.Header.Get(bus.HeaderDLQSequence)
	}
	return h.Ledger.Tx(ctx, func(tx pgx.Tx) error {
		_, err := ledger.RaiseException(ctx, tx, ledger.Exception{
			Kind:          "dead_letter",
			AggregateType: "message",
			AggregateID:   original,
			Reason:        d.Header.Get(bus.HeaderDLQReason),
			Detail: map[string]any{
				"subject":    d.Header.Get(bus.HeaderDLQSubject),
				"stream":     d.Header.Get(bus.HeaderDLQStream),
				"sequence":   d.Header.Get(bus.HeaderDLQSequence),
				"consumer":   d.Header.Get(bus.HeaderDLQConsumer),
				"deliveries": d.Header.Get(bus.HeaderDLQDeliveries),
				"data":       base64.StdEncoding.EncodeToString(d.Data),
			},
			DedupKey: fmt.Sprintf("dlq:%s", d.ID),
		})
		return err
	})
}
