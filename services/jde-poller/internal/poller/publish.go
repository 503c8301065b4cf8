package poller

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/erpmsg"
	"github.com/ml-connector/ml-connector/platform/watermark"
)

// Event kinds, the last subject token.
const (
	kindCustomer = erpmsg.KindCustomer
	kindInvoice  = erpmsg.KindInvoice
	kindRefund   = erpmsg.KindRefund
)

// pending is one row's outcome in change order: a message to publish, or
// nothing (a row of no interest, or one recorded as rejected), the
// watermark position it stands for and what poll_seen records of it (zero
// for a row whose stamp could not be read).
type pending struct {
	msg  *bus.Msg
	kind string
	co   string
	mark watermark.Mark
	seen watermark.Row
}

// message builds the bus message of an event. Its id names the
// connection: two JD Edwards environments may well share company codes,
// address numbers and update times, and JetStream would drop the second as
// a repeat of the first.
func (p *Poller) message(co, kind, key, version string, event proto.Message) (*bus.Msg, error) {
	data, err := proto.Marshal(event)
	if err != nil {
		return nil, fmt.Errorf("encode %s %s: %w", kind, key, err)
	}
	m, err := erpmsg.Msg(erpmsg.JDE, p.cfg.ConnectionName, co, kind, key, version, data)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// publish sends the messages of items in batches of BatchSize and, after
// JetStream acknowledged a batch, moves entity's watermark to the mark of
// the batch's last item (items must be in change order) and records the
// batch's rows as handled. With entity "" no watermark moves; the caller
// saves its own after publish returns.
func (p *Poller) publish(ctx context.Context, entity string, items []pending, res *Result) error {
	for len(items) > 0 {
		n, msgs := 0, make([]bus.Msg, 0, p.cfg.BatchSize)
		for n < len(items) && len(msgs) < p.cfg.BatchSize {
			if items[n].msg != nil {
				msgs = append(msgs, *items[n].msg)
			}
			n++
		}
		batch := items[:n]
		items = items[n:]
		if len(msgs) > 0 {
			acks, err := p.cfg.Publisher.PublishBatch(ctx, msgs)
			if err != nil {
				return fmt.Errorf("connection %s: publish: %w", p.cfg.ConnectionName, err)
			}
			i := 0
			for _, it := range batch {
				if it.msg == nil {
					continue
				}
				p.cfg.Metrics.published(ctx, p.cfg.ConnectionName, it.co, it.kind, acks[i].Duplicate)
				i++
				switch it.kind {
				case kindCustomer:
					res.Customers++
				case kindInvoice:
					res.Invoices++
				case kindRefund:
					res.Refunds++
				}
			}
		}
		if last := batch[len(batch)-1].mark; entity != "" && !last.At.IsZero() {
			handled := make([]watermark.Row, 0, len(batch))
			for _, it := range batch {
				if it.seen.Key != "" {
					handled = append(handled, it.seen)
				}
			}
			if err := p.marks.Save(ctx, p.cfg.ConnectionID, entity, last, handled); err != nil {
				return fmt.Errorf("connection %s: %w", p.cfg.ConnectionName, err)
			}
		}
	}
	return nil
}
