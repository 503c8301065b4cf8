package erpmsg_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/erpmsg"
)

func TestMsg(t *testing.T) {
	m, err := erpmsg.Msg(erpmsg.JDE, "jde-prod", "00001", erpmsg.KindInvoice, "00001/RI/1234/001", "126340093015", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "mlc.erp.jde.00001.invoice" || m.ID != "jde:jde-prod:00001:invoice:00001/RI/1234/001:126340093015" {
		t.Errorf("subject %q id %q", m.Subject, m.ID)
	}
	if err := bus.CheckMsg(m, 0); err != nil {
		t.Error(err)
	}
	erp, co, kind, err := erpmsg.Parse(m.Subject)
	if err != nil || erp != "jde" || co != "00001" || kind != "invoice" {
		t.Errorf("Parse = %q %q %q %v", erp, co, kind, err)
	}
	// Non-ASCII keys and ETags are kept as they are.
	if _, err := erpmsg.ID(erpmsg.IFS, "ifs-acme", "10", erpmsg.KindCustomer, "KUNDE-Ø1", `W/"Vk5VTT0xMjM="`); err != nil {
		t.Error(err)
	}
}

// Every part is bounded before it could reach a subject or header, and
// the errors never quote the refused value.
func TestBounds(t *testing.T) {
	type args struct{ erp, conn, co, kind, key, version string }
	ok := args{"ifs", "ifs-acme", "10", "invoice", "INV1", "v1"}
	tests := map[string]func(a *args){
		"unknown erp":        func(a *args) { a.erp = "sap" },
		"company with a dot": func(a *args) { a.co = "10.>" },
		"empty company":      func(a *args) { a.co = "" },
		"long company":       func(a *args) { a.co = strings.Repeat("1", 33) },
		"unknown kind":       func(a *args) { a.kind = "payment" },
		"connection colon":   func(a *args) { a.conn = "a:b" },
		"empty key":          func(a *args) { a.key = "" },
		"long key":           func(a *args) { a.key = strings.Repeat("k", erpmsg.MaxKeyLen+1) },
		"key with newline":   func(a *args) { a.key = "INV\r\nNats-Msg-Id: x" },
		"bad utf-8 version":  func(a *args) { a.version = "\xff" },
		"long version":       func(a *args) { a.version = strings.Repeat("v", erpmsg.MaxVersionLen+1) },
	}
	for name, breakIt := range tests {
		a := ok
		breakIt(&a)
		_, err := erpmsg.Msg(a.erp, a.conn, a.co, a.kind, a.key, a.version, nil)
		if !errors.Is(err, erpmsg.ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
			continue
		}
		if strings.Contains(err.Error(), "Nats-Msg-Id") || strings.Contains(err.Error(), "10.>") {
			t.Errorf("%s: error %q quotes the value", name, err)
		}
	}
	for _, s := range []string{"mlc.erp.ifs.10", "mlc.gc.payments.confirmed", "mlc.erp.ifs.10.invoice.x", "mlc.erp.sap.10.invoice"} {
		if _, _, _, err := erpmsg.Parse(s); !errors.Is(err, erpmsg.ErrInvalid) {
			t.Errorf("Parse(%q) = %v", s, err)
		}
	}
}
