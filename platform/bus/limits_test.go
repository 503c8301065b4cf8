package bus_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/ml-connector/ml-connector/platform/bus"
)

// A subject longer than NATS's control-line limit made the server answer
// with an error on which nats.go closes the connection for good (issue
// #17). The bus refuses such a message before sending anything, and the
// connection stays usable for the next batch.
func TestPublishRefusesWhatWouldCloseTheConnection(t *testing.T) {
	b, _ := newBus(t)
	good := bus.Msg{Subject: "mlc.gc.payments.confirmed", ID: "EV1", Data: []byte("x")}
	bad := []bus.Msg{
		{Subject: "mlc.gc." + strings.Repeat("r", 4100) + ".created", ID: "EV2", Data: []byte("x")},
		{Subject: "mlc.gc.payments.confirmed", ID: strings.Repeat("i", 70<<10), Data: []byte("x")},
		{Subject: "mlc.gc.pay ments.confirmed", ID: "EV3"},
		{Subject: "mlc.gc..confirmed", ID: "EV4"},
		{Subject: "mlc.gc.payments.confirmed", ID: "EV5", Data: make([]byte, 2<<20)},
		{Subject: "mlc.gc.payments.confirmed", ID: "EV6", Header: nats.Header{"X-Reason": {"a\r\nb"}}},
	}
	for i, m := range bad {
		if _, err := b.PublishBatch(t.Context(), []bus.Msg{good, m}); !errors.Is(err, bus.ErrInvalidMsg) {
			t.Errorf("batch %d: %v, want ErrInvalidMsg", i, err)
		}
		if _, err := b.Publish(t.Context(), m); !errors.Is(err, bus.ErrInvalidMsg) {
			t.Errorf("msg %d: %v, want ErrInvalidMsg", i, err)
		}
	}
	if !b.Conn().IsConnected() {
		t.Fatalf("connection %s after refused messages", b.Conn().Status())
	}
	// Nothing of a refused batch was sent, and the next batch goes through.
	acks, err := b.PublishBatch(t.Context(), []bus.Msg{good})
	if err != nil || len(acks) != 1 || acks[0].Sequence != 1 {
		t.Fatalf("good batch after refusals: %+v, %v (want it first in the stream)", acks, err)
	}
}

func TestRejectedMsg(t *testing.T) {
	raw := []byte(`{"id":"` + strings.Repeat("E", 100) + `"}`)
	r := bus.Rejected{Stream: bus.StreamGC, Source: "gc-webhook", Reason: "id too long\nsecond line", Data: raw}
	m := bus.RejectedMsg(r, 1<<20)
	if m.Subject != "mlc.dlq.MLC_GC.gc-webhook" || !strings.HasPrefix(m.ID, "rejected:gc-webhook:") || string(m.Data) != string(raw) {
		t.Errorf("dead letter %s %s %q", m.Subject, m.ID, m.Data)
	}
	if got := m.Header.Get(bus.HeaderDLQReason); got != "id too long second line" {
		t.Errorf("reason header %q: control characters must not reach a header", got)
	}
	if m.Header.Get(bus.HeaderDLQOriginalID) != m.ID || m.Header.Get(bus.HeaderDLQTruncated) != "" {
		t.Errorf("headers %v", m.Header)
	}
	if again := bus.RejectedMsg(r, 1<<20); again.ID != m.ID {
		t.Errorf("same input, ids %s and %s: a retried webhook would be dead-lettered twice", m.ID, again.ID)
	}
	if err := bus.CheckMsg(m, 1<<20); err != nil {
		t.Errorf("dead letter not publishable: %v", err)
	}

	big := bus.Rejected{Stream: bus.StreamGC, Source: "gc-webhook", Reason: "too large", Data: make([]byte, 3<<20)}
	m = bus.RejectedMsg(big, 1<<20)
	if err := bus.CheckMsg(m, 1<<20); err != nil {
		t.Errorf("truncated dead letter not publishable: %v", err)
	}
	if !strings.HasPrefix(m.Header.Get(bus.HeaderDLQTruncated), "3145728 bytes, sha256 ") {
		t.Errorf("truncation not recorded: %q", m.Header.Get(bus.HeaderDLQTruncated))
	}
}
