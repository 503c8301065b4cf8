package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// moverDurable is the one consumer, shared by every replica of the services
// that consume MLC_ERP and MLC_GC, that turns max-deliveries advisories into
// dead letters.
const moverDurable = "mlc-dead-letter-mover"

// maxDeliveriesAdvisory is the part of JetStream's
// io.nats.jetstream.advisory.v1.max_deliver advisory we need.
type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// MoveDeadLetters copies every message whose deliveries ran out without an
// acknowledgement (the handler crashed or hung on its last delivery, so the
// consume loop never saw it fail) to MLC_DLQ, until ctx ends. Handler
// failures on the last delivery are dead-lettered by Consume itself; this
// covers the deliveries nobody answered.
func (b *Bus) MoveDeadLetters(ctx context.Context) error {
	return b.Consume(ctx, ConsumerSpec{
		Stream:     StreamAdvisories,
		Durable:    moverDurable,
		MaxDeliver: 20,
	}, b.moveDeadLetter)
}

func (b *Bus) moveDeadLetter(ctx context.Context, d *Delivery) error {
	var adv maxDeliveriesAdvisory
	if err := json.Unmarshal(d.Data, &adv); err != nil || adv.Stream == "" || adv.StreamSeq == 0 {
		return Poison(fmt.Errorf("unreadable max-deliveries advisory: %q", d.Data))
	}
	dl := deadLetter{
		stream:     adv.Stream,
		consumer:   adv.Consumer,
		seq:        adv.StreamSeq,
		deliveries: adv.Deliveries,
		reason:     fmt.Sprintf("exhausted %d deliveries without acknowledgement", adv.Deliveries),
		kind:       "unacknowledged",
	}
	stream, err := b.js.Stream(ctx, adv.Stream)
	if err != nil {
		return fmt.Errorf("dead-letter mover: stream %s: %w", adv.Stream, err)
	}
	raw, err := stream.GetMsg(ctx, adv.StreamSeq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		// Aged out before we got here: still record that it was lost to
		// its consumer, so an operator sees it.
		dl.reason += "; message no longer in stream"
		dl.header = nats.Header{}
	case err != nil:
		return fmt.Errorf("dead-letter mover: get %s/%d: %w", adv.Stream, adv.StreamSeq, err)
	default:
		dl.subject, dl.data, dl.header = raw.Subject, raw.Data, raw.Header
	}
	return b.deadLetter(ctx, dl)
}
