package mlcv1_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/timestamppb"

	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
)

const pkg protoreflect.FullName = "mlc.v1"

// eventSuffixes name the top-level messages that travel as events (on NATS or as an
// outcome to erp-poster) and therefore must carry schema_version = 1. A new event type is
// expected to follow one of these names; TestEventMessagesHaveSchemaVersion makes sure it
// then cannot ship without the version field.
var eventSuffixes = []string{"Changed", "Ready", "Requested", "Event", "Outcome"}

func isEventName(name protoreflect.Name) bool {
	for _, s := range eventSuffixes {
		if strings.HasSuffix(string(name), s) {
			return true
		}
	}
	return false
}

var (
	created  = timestamppb.New(time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC))
	received = timestamppb.New(time.Date(2026, 3, 2, 9, 30, 1, 500_000_000, time.UTC))
	ifs      = &mlcv1.ErpRef{Erp: mlcv1.Erp_ERP_IFS, Connection: "ifs-prod", Company: "10"}
	jde      = &mlcv1.ErpRef{Erp: mlcv1.Erp_ERP_JDE, Connection: "jde-eu", Company: "00001"}
	jdeKey   = &mlcv1.InvoiceKey{InvoiceId: "1001", InvoiceNo: "1001", DocType: "RI", Suffix: "001"}
)

// eventFixtures holds one instance of every event message with every field set, so a
// round trip exercises every field's encoding (see TestFixturesPopulateEveryField).
func eventFixtures() []struct {
	name string
	msg  proto.Message
} {
	return []struct {
		name string
		msg  proto.Message
	}{
		{"CustomerChanged", &mlcv1.CustomerChanged{
			SchemaVersion: 1, Erp: ifs, CustomerId: "C1001", Version: `W/"Vk9M..."`,
			Name: "Nordic Freight AB", CompanyName: "Nordic Freight AB", GivenName: "Anna", FamilyName: "Lind",
			Email: "ap@nordicfreight.example", PhoneNumber: "+46 8 123 456",
			AddressLine1: "Hamngatan 1", AddressLine2: "Box 12", AddressLine3: "Plan 3",
			City: "Stockholm", Region: "Stockholm", PostalCode: "111 47", CountryCode: "SE", Language: "sv",
			BankDetails: &mlcv1.BankDetails{
				AccountHolderName: "Nordic Freight AB", Iban: "SE4550000000058398257466",
				AccountNumber: "5839825746", BranchCode: "5000", BankCode: "SEB", CountryCode: "SE",
				Currency: "SEK", AccountType: "checking",
			},
			SwedishIdentityNumber: "5560000000", DanishIdentityNumber: "1234567890",
			UpdatedAt: created, ErpFields: map[string]string{"PaymentMethod": "DD"},
		}},
		{"InvoiceReady", &mlcv1.InvoiceReady{
			SchemaVersion: 1, Erp: jde, Invoice: jdeKey, CustomerId: "4242", Version: "126061.93000",
			Amount: "1234.50", GrossAmount: "1500.00", Currency: "EUR",
			InvoiceDate: "2026-03-01", DueDate: "2026-03-31", PaymentTerms: "N30", BusinessUnit: "M30",
			Recurrence: &mlcv1.Recurrence{
				IntervalUnit: mlcv1.IntervalUnit_INTERVAL_UNIT_YEARLY, Interval: 1, DayOfMonth: -1, Count: 12, Month: 3,
			},
			UpdatedAt: created, ErpFields: map[string]string{"F03B11_PYIN": "D"},
		}},
		{"RefundRequested", &mlcv1.RefundRequested{
			SchemaVersion: 1, Erp: jde, RefundId: "RM-77", Invoice: jdeKey, CustomerId: "4242",
			Version: "126062.101500", Amount: "0.10", Currency: "EUR", Reason: "duplicate freight charge",
			UpdatedAt: created, ErpFields: map[string]string{"F03B11_DCT": "RM"},
		}},
		{"GoCardlessEvent", &mlcv1.GoCardlessEvent{
			SchemaVersion: 1, Connection: "gc-eu", WebhookId: "WB123", EventId: "EV123", CreatedAt: created,
			ResourceType: "payments", Action: "failed",
			Links: map[string]string{"payment": "PM123", "parent_event": "EV122"},
			Details: &mlcv1.EventDetails{
				Origin: "bank", Cause: "insufficient_funds", Description: "The customer's account had insufficient funds.",
				Scheme: "sepa_core", ReasonCode: "AM04", WillAttemptRetry: true, BankAccountId: "BA123",
			},
			Metadata:         map[string]string{"k": "v"},
			ResourceMetadata: map[string]string{"mlc_invoice": "jde:00001:1001/RI/001"},
			RawJson:          []byte(`{"id":"EV123","action":"failed"}`),
			ReceivedAt:       received, Source: mlcv1.GoCardlessEvent_SOURCE_WEBHOOK,
		}},
		{"PaymentOutcome", &mlcv1.PaymentOutcome{
			SchemaVersion: 1, OutcomeId: "EV124", Erp: jde, Invoice: jdeKey,
			Kind: mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_PAID_OUT, PaymentId: "PM123", PayoutId: "PO123",
			AmountMinor: 123450, Currency: "EUR", OccurredAt: created,
			Cause: "payment_paid_out", ReasonCode: "none", Description: "Paid out", ChargeDate: "2026-03-31",
			CustomerId: "4242", BusinessUnit: "M30",
		}},
		{"RefundOutcome", &mlcv1.RefundOutcome{
			SchemaVersion: 1, OutcomeId: "EV125", Erp: jde, RefundId: "RM-77", Invoice: jdeKey,
			Kind: mlcv1.RefundOutcomeKind_REFUND_OUTCOME_KIND_FAILED, GocardlessRefundId: "RF123", PaymentId: "PM123",
			AmountMinor: 10, Currency: "EUR", OccurredAt: created, Cause: "refund_bounced", ReasonCode: "AC04",
			Description: "Bounced", CustomerId: "4242",
		}},
		{"MandateOutcome", &mlcv1.MandateOutcome{
			SchemaVersion: 1, OutcomeId: "EV126", Erp: ifs, CustomerId: "C1001", MandateId: "MD123",
			Status: mlcv1.MandateStatus_MANDATE_STATUS_SUSPENDED_BY_PAYER, OccurredAt: created,
			Cause: "mandate_suspended_by_payer", ReasonCode: "X", Description: "Suspended", Scheme: "autogiro",
			AuthorisationUrl: "https://pay.gocardless.com/billing/static/flow?id=BRF123", AuthorisationExpiresAt: created,
		}},
	}
}

func TestEventRoundTrip(t *testing.T) {
	for _, tc := range eventFixtures() {
		t.Run(tc.name, func(t *testing.T) {
			// Deterministic (sorted map keys): re-encoding a decoded event must give the same
			// bytes, so a re-published copy is indistinguishable from the original.
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(tc.msg)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			got := tc.msg.ProtoReflect().Type().New().Interface()
			if err := proto.Unmarshal(b, got); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			if !proto.Equal(tc.msg, got) {
				t.Fatalf("round trip changed the message:\n want %v\n  got %v", tc.msg, got)
			}
			b2, err := proto.MarshalOptions{Deterministic: true}.Marshal(got)
			if err != nil {
				t.Fatalf("re-marshal: %v", err)
			}
			if string(b) != string(b2) {
				t.Fatalf("deterministic encoding differs after a round trip")
			}
		})
	}
}

// TestFixturesPopulateEveryField keeps the round trip honest: a field added to an event
// without a value in the fixture would otherwise never be encoded by the test.
func TestFixturesPopulateEveryField(t *testing.T) {
	for _, tc := range eventFixtures() {
		t.Run(tc.name, func(t *testing.T) {
			checkPopulated(t, tc.name, tc.msg.ProtoReflect())
		})
	}
}

func checkPopulated(t *testing.T, path string, m protoreflect.Message) {
	t.Helper()
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !m.Has(fd) {
			t.Errorf("%s.%s is not set in the fixture", path, fd.Name())
			continue
		}
		// Recurse into our own sub-messages; well-known types are not ours to check.
		if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() &&
			fd.Message().ParentFile().Package() == pkg {
			checkPopulated(t, path+"."+string(fd.Name()), m.Get(fd).Message())
		}
	}
}

func packageFiles(t *testing.T) []protoreflect.FileDescriptor {
	t.Helper()
	var files []protoreflect.FileDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage(pkg, func(fd protoreflect.FileDescriptor) bool {
		files = append(files, fd)
		return true
	})
	if len(files) == 0 {
		t.Fatalf("no files registered for package %s", pkg)
	}
	return files
}

func TestEventMessagesHaveSchemaVersion(t *testing.T) {
	found := map[string]bool{}
	for _, f := range packageFiles(t) {
		msgs := f.Messages()
		for i := 0; i < msgs.Len(); i++ {
			md := msgs.Get(i)
			if !isEventName(md.Name()) {
				continue
			}
			found[string(md.Name())] = true
			fd := md.Fields().ByNumber(1)
			switch {
			case fd == nil:
				t.Errorf("%s (%s): event message has no field 1; want uint32 schema_version = 1", md.FullName(), f.Path())
			case fd.Name() != "schema_version" || fd.Kind() != protoreflect.Uint32Kind || fd.Cardinality() != protoreflect.Optional || fd.ContainingOneof() != nil:
				t.Errorf("%s (%s): field 1 is %s %s; want uint32 schema_version = 1", md.FullName(), f.Path(), fd.Kind(), fd.Name())
			}
		}
	}
	// Guard against the suffix rule silently matching nothing, and make sure every event
	// found has a fixture in the round trip.
	fixtures := map[string]bool{}
	for _, tc := range eventFixtures() {
		fixtures[tc.name] = true
	}
	for _, want := range []string{
		"CustomerChanged", "InvoiceReady", "RefundRequested", "GoCardlessEvent",
		"PaymentOutcome", "RefundOutcome", "MandateOutcome",
	} {
		if !found[want] {
			t.Errorf("expected event message %s.%s not found", pkg, want)
		}
	}
	for name := range found {
		if !fixtures[name] {
			t.Errorf("event message %s has no fixture in eventFixtures", name)
		}
	}
}

// TestNoFloatingPointFields enforces the money rule in common.proto: ERP amounts are decimal
// strings, GoCardless amounts are integer minor units, and nothing is float or double.
func TestNoFloatingPointFields(t *testing.T) {
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		fields := md.Fields()
		for i := 0; i < fields.Len(); i++ {
			fd := fields.Get(i)
			k := fd.Kind()
			if fd.IsMap() {
				k = fd.MapValue().Kind()
			}
			if k == protoreflect.FloatKind || k == protoreflect.DoubleKind {
				t.Errorf("%s is %s; amounts must be decimal strings or int64 minor units", fd.FullName(), k)
			}
		}
		nested := md.Messages()
		for i := 0; i < nested.Len(); i++ {
			walk(nested.Get(i))
		}
	}
	for _, f := range packageFiles(t) {
		msgs := f.Messages()
		for i := 0; i < msgs.Len(); i++ {
			walk(msgs.Get(i))
		}
	}
}

func TestErpPosterService(t *testing.T) {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName("mlc.v1.ErpPoster")
	if err != nil {
		t.Fatalf("service mlc.v1.ErpPoster not registered: %v", err)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		t.Fatalf("mlc.v1.ErpPoster is a %T, not a service", d)
	}
	if got := mlcv1.ErpPoster_ServiceDesc.ServiceName; got != string(sd.FullName()) {
		t.Errorf("grpc ServiceDesc name %q != descriptor %q", got, sd.FullName())
	}

	tests := []struct {
		method, in, out, outcome string
	}{
		{"PostPaymentOutcome", "PostPaymentOutcomeRequest", "PostPaymentOutcomeResponse", "PaymentOutcome"},
		{"PostRefundOutcome", "PostRefundOutcomeRequest", "PostRefundOutcomeResponse", "RefundOutcome"},
		{"PostMandateStatus", "PostMandateStatusRequest", "PostMandateStatusResponse", "MandateOutcome"},
		// A payout is not an outcome: its own payout_id (within its ErpRef) is the key.
		{"PostPayout", "PostPayoutRequest", "PostPayoutResponse", ""},
	}
	if n := sd.Methods().Len(); n != len(tests) {
		t.Errorf("ErpPoster has %d methods, want %d", n, len(tests))
	}
	for _, tc := range tests {
		t.Run(tc.method, func(t *testing.T) {
			md := sd.Methods().ByName(protoreflect.Name(tc.method))
			if md == nil {
				t.Fatalf("method %s missing", tc.method)
			}
			if md.IsStreamingClient() || md.IsStreamingServer() {
				t.Errorf("%s must be unary", tc.method)
			}
			if got := md.Input().FullName(); got != pkg.Append(protoreflect.Name(tc.in)) {
				t.Errorf("%s input = %s, want %s", tc.method, got, tc.in)
			}
			if got := md.Output().FullName(); got != pkg.Append(protoreflect.Name(tc.out)) {
				t.Errorf("%s output = %s, want %s", tc.method, got, tc.out)
			}
			// The request wraps the outcome, whose outcome_id is the idempotency key.
			of := md.Input().Fields().ByName("outcome")
			if tc.outcome == "" {
				if md.Input().Fields().ByName("payout_id") == nil || md.Input().Fields().ByName("erp") == nil {
					t.Errorf("%s needs payout_id and erp, its idempotency key", tc.in)
				}
			} else if of == nil || of.Message() == nil || of.Message().FullName() != pkg.Append(protoreflect.Name(tc.outcome)) {
				t.Errorf("%s.outcome must be a %s", tc.in, tc.outcome)
			} else if of.Message().Fields().ByName("outcome_id") == nil {
				t.Errorf("%s has no outcome_id", tc.outcome)
			}
			// Responses let the caller record the posting and recognise a repeat.
			resp := md.Output().Fields()
			for _, f := range []struct {
				name protoreflect.Name
				kind protoreflect.Kind
			}{{"erp_reference", protoreflect.StringKind}, {"already_posted", protoreflect.BoolKind}, {"posted_at", protoreflect.MessageKind}} {
				fd := resp.ByName(f.name)
				if fd == nil || fd.Kind() != f.kind {
					t.Errorf("%s.%s missing or not %s", tc.out, f.name, f.kind)
				}
			}
			if fd := resp.ByName("posted_at"); fd != nil && fd.Message() != nil &&
				fd.Message().FullName() != "google.protobuf.Timestamp" {
				t.Errorf("%s.posted_at is %s, want google.protobuf.Timestamp", tc.out, fd.Message().FullName())
			}
		})
	}
}
