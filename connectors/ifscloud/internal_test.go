package ifscloud

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestParseErrorClasses(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		code     string
		message  string
		classes  []error
		notClass []error
	}{
		{"validation", 400, `{"error":{"code":"ODP_UNSUPPORTED_URL","message":"bad filter","details":[{"code":"X","message":"at 3"}]}}`,
			"ODP_UNSUPPORTED_URL", "bad filter", []error{ErrInvalid}, []error{ErrUnavailable, ErrNotFound, ErrConflict}},
		{"not found", 404, `{"error":{"code":"MI_METADATA_NOTFOUND","message":"no set"}}`,
			"MI_METADATA_NOTFOUND", "no set", []error{ErrNotFound}, []error{ErrInvalid, ErrUnavailable}},
		{"etag race", 412, `{"error":{"code":"ODP_PRECONDITION_FAILED","message":"changed"}}`,
			"ODP_PRECONDITION_FAILED", "changed", []error{ErrConflict}, []error{ErrInvalid, ErrUnavailable}},
		{"privileges", 403, `{"error":{"code":"FORBIDDEN","message":"Insufficient privileges."}}`,
			"FORBIDDEN", "Insufficient privileges.", []error{ErrUnauthorized, ErrUnavailable}, []error{ErrInvalid}},
		{"database", 500, `{"error":{"code":"DATABASE_ERROR","message":"ORA-00060: deadlock"}}`,
			"DATABASE_ERROR", "ORA-00060: deadlock", []error{ErrUnavailable}, []error{ErrInvalid}},
		{"throttled", 429, ``, "", "Too Many Requests", []error{ErrUnavailable}, []error{ErrInvalid}},
		{"proxy page", 502, `<html>Bad gateway</html>`, "", "<html>Bad gateway</html>", []error{ErrUnavailable}, []error{ErrInvalid}},
		{"missing If-Match", 428, `{"error":{"code":"ODP_IF_MATCH_REQUIRED","message":"needs If-Match"}}`,
			"ODP_IF_MATCH_REQUIRED", "needs If-Match", []error{ErrInvalid}, []error{ErrConflict}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := parseError(tc.status, []byte(tc.body))
			if e.Code != tc.code || e.Message != tc.message || e.Status != tc.status {
				t.Fatalf("parsed %+v", e)
			}
			for _, c := range tc.classes {
				if !errors.Is(e, c) {
					t.Errorf("%v is not %v", e, c)
				}
			}
			for _, c := range tc.notClass {
				if errors.Is(e, c) {
					t.Errorf("%v is %v", e, c)
				}
			}
		})
	}
	if got := parseError(400, []byte(`{"error":{"code":"C","message":"m","details":[{"code":"D","message":"d"}]}}`)).Error(); got != "ifs: 400 C: m; D d" {
		t.Errorf("message %q", got)
	}
}

func TestResolveStaysOnTheTenant(t *testing.T) {
	c := &Client{s: Settings{BaseURL: "https://acme.ifs.cloud/tenant", APIPath: "/main/ifsapplications/projection/v1"},
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	tests := []struct {
		link, want, err string
	}{
		{"https://acme.ifs.cloud/tenant/main/ifsapplications/projection/v1/P.svc/S?$skiptoken=x", "https://acme.ifs.cloud/tenant/main/ifsapplications/projection/v1/P.svc/S?$skiptoken=x", ""},
		{"P.svc/S?$skiptoken=y", "https://acme.ifs.cloud/tenant/main/ifsapplications/projection/v1/P.svc/S?$skiptoken=y", ""},
		// The tenant's internal host and path root behind the proxy: rebased.
		{"http://ifs-node-3:8080/main/ifsapplications/projection/v1/P.svc/S?$skiptoken=z", "https://acme.ifs.cloud/tenant/main/ifsapplications/projection/v1/P.svc/S?$skiptoken=z", ""},
		{"https://evil.example/main/ifsapplications/projection/v1/P.svc/S?$skiptoken=w", "https://acme.ifs.cloud/tenant/main/ifsapplications/projection/v1/P.svc/S?$skiptoken=w", ""},
		{"https://evil.example/steal", "", "leaves acme.ifs.cloud"},
		{"http://acme.ifs.cloud/downgrade", "", "leaves acme.ifs.cloud"},
		{"https://user:pw@evil.example/main/ifsapplications/projection/v1/P.svc/S", "", "leaves acme.ifs.cloud"},
		{"https://acme.ifs.cloud/tenant/auth/realms/ifs/protocol/openid-connect/token", "", "leaves acme.ifs.cloud"},
	}
	for _, tc := range tests {
		got, err := c.resolve(tc.link)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.link, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v", tc.link, got, err)
		}
	}
}

func TestTenantLimiterIsShared(t *testing.T) {
	a := tenantLimiter("https://shared.ifs.cloud", 1000)
	if b := tenantLimiter("https://SHARED.ifs.cloud", 1000); a != b {
		t.Error("two connections to one tenant got separate limiters")
	}
	if other := tenantLimiter("https://other.ifs.cloud", 1000); other == a {
		t.Error("two tenants share a limiter")
	}
	if got := a.Limit(); got < 16.6 || got > 16.7 || a.Burst() != 16 {
		t.Errorf("limit %v burst %d, want 1000 per minute", got, a.Burst())
	}
}

func TestChangesFilter(t *testing.T) {
	s, err := ParseSettings(map[string]any{"base_url": "https://x", "client_id": "c", "company_codes": []any{"10"},
		"customer_filter": "Objstate eq IfsApp.CustomerHandling.CustomerState'Active'"})
	if err != nil {
		t.Fatal(err)
	}
	wm := Watermark{Time: time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.FixedZone("CET", 3600)), Key: "O'Neil"}
	// CustomerInfo has no company: the company is not part of its filter.
	got := changesFilter(s.Customers, "10", wm)
	want := "(Objstate eq IfsApp.CustomerHandling.CustomerState'Active') and " +
		"(Rowversion gt 2026-01-02T02:04:05.6Z or (Rowversion eq 2026-01-02T02:04:05.6Z and CustomerId gt 'O''Neil'))"
	if got != want {
		t.Errorf("filter\n got %s\nwant %s", got, want)
	}
	if got := changesFilter(s.Invoices, "20", Watermark{Time: wm.Time, Key: "42"}); !strings.HasPrefix(got, "Company eq '20' and (") ||
		!strings.HasSuffix(got, "and InvoiceId gt 42))") {
		t.Errorf("numeric key literal: %s", got)
	}
	// No key: from that time on, the time itself included (an overlap re-read).
	if got := changesFilter(s.Invoices, "20", Watermark{Time: wm.Time}); got != "Company eq '20' and ("+s.Invoices.Filter+") and Rowversion ge 2026-01-02T02:04:05.6Z" {
		t.Errorf("from a time: %s", got)
	}
}
