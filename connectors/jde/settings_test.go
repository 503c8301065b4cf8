package jde

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/platform/secrets"
)

func settingsFrom(t *testing.T, js string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseSettingsDefaults(t *testing.T) {
	s, err := ParseSettings(settingsFrom(t, `{"base_url":"https://ais:9300","username":"MLC","company_codes":["00001"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Role != "*ALL" || s.DeviceName != "ml-connector" || s.RefreshEvery != 50*time.Minute || s.PageSize != 500 ||
		s.Amounts.Implied || s.Location != time.UTC || s.Writer.ReceiptOn != ReceiptOnConfirmed ||
		s.Writer.Orchestrations != DefaultOrchestrations || s.Writer.Preset != PresetStandard || s.Writer.ReceiptsUser != "MLC" ||
		len(s.Nodes) != 0 || strings.Join(s.InvoiceDocTypes, ",") != "RI" ||
		strings.Join(s.RefundDocTypes, ",") != "RF" || len(s.TermsRecurrence) != 0 {
		t.Fatalf("defaults = %+v", s)
	}
}

func TestParseSettingsFull(t *testing.T) {
	s, err := ParseSettings(settingsFrom(t, `{
		"base_url":"https://ais:9300","username":"MLC","company_codes":["00001","00200"],
		"environment":"JPD920","role":"AR","refresh_every":"25m","page_size":1000,
		"amount_format":"implied","implied_decimals":2,"timezone":"Europe/London",
		"gl_accounts":{" M30":"M30.1110","M40":"M40.1110"},"default_gl_account":"1.1110","receipt_on":"paid_out",
		"orchestrations":{"receipt":"ACME_Receipt","mandate":"ACME_Mandate"},"write_preset":"orchestrations",
		"ais_nodes":["https://ais1:9300","https://ais2:9300"],
		"invoice_doc_types":["RI","RN"],"refund_doc_types":["RF","R1"],
		"terms_recurrence":{"M01":{"interval_unit":"monthly","day_of_month":1},"Y01":{"interval_unit":"yearly","month":4,"count":3}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Environment != "JPD920" || s.RefreshEvery != 25*time.Minute || s.PageSize != 1000 || !s.Amounts.Implied ||
		s.Amounts.Decimals != 2 || s.Location.String() != "Europe/London" || s.Writer.GLAccounts["M30"] != "M30.1110" ||
		s.Writer.ReceiptOn != ReceiptOnPaidOut || s.Writer.Orchestrations.Receipt != "ACME_Receipt" || s.Writer.Preset != PresetOrchestrations ||
		strings.Join(s.Nodes, ",") != "https://ais1:9300,https://ais2:9300" ||
		s.Writer.Orchestrations.Failure != "MLC_PaymentFailure" || s.Writer.Orchestrations.Mandate != "ACME_Mandate" ||
		s.TermsRecurrence["M01"] != (Recurrence{IntervalUnit: "monthly", DayOfMonth: 1}) ||
		s.TermsRecurrence["Y01"] != (Recurrence{IntervalUnit: "yearly", Month: 4, Count: 3}) {
		t.Fatalf("settings = %+v", s)
	}
	cfg := s.ClientConfig("acme", cfgPassword)
	if cfg.Name != "acme" || cfg.BaseURL != "https://ais:9300" || cfg.Username != "MLC" || cfg.Password.Reveal() != "pw" {
		t.Fatalf("client config = %+v", cfg)
	}
}

func TestParseSettingsErrors(t *testing.T) {
	base := `"base_url":"https://ais","username":"MLC","company_codes":["00001"]`
	tests := []struct {
		js, want string
	}{
		{`{"username":"MLC","company_codes":["1"]}`, "base_url and username"},
		{`{"base_url":"https://ais","username":"MLC"}`, "company_codes"},
		{`{` + base + `,"company_codes":[1]}`, "company_codes"},
		{`{` + base + `,"page_size":0}`, "page_size"},
		{`{` + base + `,"page_size":1.5}`, "page_size"},
		{`{` + base + `,"refresh_every":"soon"}`, "refresh_every"},
		{`{` + base + `,"amount_format":"float"}`, "amount_format"},
		{`{` + base + `,"amount_format":"implied","implied_decimals":"two"}`, "implied_decimals"},
		{`{` + base + `,"amount_format":"implied","implied_decimals":9}`, "implied_decimals"},
		{`{` + base + `,"timezone":"Mars/Olympus"}`, "timezone"},
		{`{` + base + `,"gl_accounts":{"M30":5}}`, "gl_accounts.M30"},
		{`{` + base + `,"receipt_on":"submitted"}`, "receipt_on"},
		{`{` + base + `,"orchestrations":{"receipt":"a b"}}`, "orchestrations.receipt"},
		{`{` + base + `,"orchestrations":{"payout":"X"}}`, "orchestrations.payout"},
		{`{` + base + `,"refund_doc_types":["RI"]}`, "both an invoice and a refund"},
		{`{` + base + `,"terms_recurrence":{"M01":{"interval_unit":"daily"}}}`, "terms_recurrence.M01"},
		{`{` + base + `,"terms_recurrence":{"M01":{"interval_unit":"monthly","day_of_month":31}}}`, "terms_recurrence.M01"},
		{`{` + base + `,"terms_recurrence":{"M01":{"interval_unit":"monthly","every":2}}}`, "terms_recurrence.M01"},
		{`{` + base + `,"terms_recurrence":[]}`, "terms_recurrence"},
		{`{` + base + `,"ais_nodes":["ais2:9300"]}`, "ais_nodes"},
		{`{` + base + `,"write_preset":"bapi"}`, "write_preset"},
		{`{"base_url":"https://ais","username":"AVERYLONGUSER","company_codes":["00001"]}`, "EDUS"},
		{`{` + base + `,"ais_nodes":["https://u:p@ais2"]}`, "ais_nodes"},
		{`{` + base + `,"receipt_on":"payout"}`, "payout_bank_accounts.00001"},
		{`{` + base + `,"payout_fee_accounts":{"00001":"HQ.6570"}}`, "payout_bank_accounts.00001 is required"},
		{`{` + base + `,"payout_fee_accounts":{"00002":"HQ.6570"},"payout_bank_accounts":{"00002":"HQ.1110"}}`, `company "00002" is not one of company_codes`},
		{`{` + base + `,"payout_fee_accounts":{"00001":"6570"},"payout_bank_accounts":{"00001":"HQ.1110"}}`, "is not a JDE account"},
		{`{` + base + `,"payout_bank_accounts":{"00001":"HQ.1110.TOOLONGSUB"}}`, "is not a JDE account"},
		{`{` + base + `,"payout_fee_tax_accounts":{"00001":"HQ.2640"}}`, "has no payout_fee_accounts.00001"},
	}
	for _, tt := range tests {
		_, err := ParseSettings(settingsFrom(t, tt.js))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one mentioning %q", tt.js, err, tt.want)
		}
	}
	// Every problem is reported at once.
	_, err := ParseSettings(settingsFrom(t, `{"page_size":0,"receipt_on":"x"}`))
	if err == nil || !strings.Contains(err.Error(), "page_size") || !strings.Contains(err.Error(), "receipt_on") || !strings.Contains(err.Error(), "company_codes") {
		t.Fatalf("joined errors = %v", err)
	}
}

var cfgPassword = secrets.NewValue("pw")
