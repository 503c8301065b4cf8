package collect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/accounts"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
)

// Customer aligns GoCardless with a changed ERP customer: the customer is
// created or updated, and when the event carries bank details that differ
// from those of the current mandate, or the current mandate can no longer
// be used, a bank account and mandate are created under the company's
// creditor.
//
// The alignment follows the orchestrator's one pattern for outside calls
// (see the package doc of the orchestrator): its intent is committed first
// as a lease on the customer's link, held by this version of the customer
// (so two versions never align at once, and a redelivery of this one
// resumes it), the GoCardless calls are made with nothing held in the
// database, and the results are recorded, and the lease released, in one
// transaction after them.
//
// Each event is a full snapshot, and JetStream redelivers and reorders: a
// snapshot the ERP changed before the one already applied, and published
// before it, is ignored, with no GoCardless call (see stale), so an older
// message redelivered late neither puts the customer's old details back
// nor, with direct mandate setup, makes a mandate on bank details the
// customer changed away from. published is when m's message was stored
// on MLC_ERP (bus.Delivery.Published); zero when unknown.
func (c *Collector) Customer(ctx context.Context, m *mlcv1.CustomerChanged, published time.Time) error {
	route, erp, err := c.route(ctx, m.GetErp())
	if err == nil {
		err = c.alignCustomer(ctx, route, erp, m, published.Truncate(time.Microsecond))
	}
	key := func(erp string, connID int64) fmt.Stringer {
		return ledger.CustomerKey{ERP: erp, ConnectionID: connID, Company: m.GetErp().GetCompany(), CustomerID: m.GetCustomerId()}
	}
	return c.settle(ctx, err, "customer", key, m.GetErp(), m.GetVersion(), map[string]any{"version": m.GetVersion()})
}

// CustomerLease is how long a customer's alignment keeps other versions
// of the customer waiting; past it, after a crash, another version takes
// the alignment over. It outlasts the client's retries of three calls.
const CustomerLease = 2 * time.Minute

// customerIntent is what an alignment commits to before calling out.
type customerIntent struct {
	Version     string `json:"version"`
	Fingerprint string `json:"bank_fingerprint,omitempty"`
	Create      bool   `json:"create_customer,omitempty"`
	Update      bool   `json:"update_customer,omitempty"`
	Mandate     bool   `json:"new_mandate,omitempty"`
	// Replaces is the mandate a new one replaces ("first" for none); it
	// is part of the new mandate's idempotency key.
	Replaces string `json:"replaces,omitempty"`
}

func (c *Collector) alignCustomer(ctx context.Context, route accounts.Route, erp string, m *mlcv1.CustomerChanged, published time.Time) error {
	if m.GetCustomerId() == "" {
		return invalidf("invalid_customer", "customer event without customer id")
	}
	key := ledger.CustomerKey{ERP: erp, ConnectionID: route.ERP.ID, Company: route.Company, CustomerID: m.GetCustomerId()}
	keyPrefix := fmt.Sprintf("mlc:%s:%d:%s:%s", erp, route.ERP.ID, route.Company, m.GetCustomerId())
	fp := bankFingerprint(m.GetBankDetails())
	holder := "version:" + m.GetVersion() + ":" + fp
	direct := route.GC.MandateSetup == accounts.SetupDirect

	at := snapshotAt(m)

	// 1. The intent, committed.
	var link ledger.CustomerLink
	var plan customerIntent
	var ignored, wentBack bool
	err := c.ledger.Tx(ctx, func(tx pgx.Tx) error {
		var err error
		if link, err = ledger.LockCustomer(ctx, tx, key); err != nil {
			return err
		}
		// Decided under the link's lock, from what the last alignment
		// recorded: a newer snapshot still aligning holds the lease, so
		// this one finds it busy below, and once it is recorded, stale.
		if ignored = stale(link, at, published); ignored {
			return ledger.IgnoreStaleCustomer(ctx, tx, link, m.GetVersion(), at, published)
		}
		wentBack = !at.IsZero() && link.ERPUpdatedAt.Year() > 1 && at.Before(link.ERPUpdatedAt)
		plan = customerIntent{Version: m.GetVersion(), Fingerprint: fp,
			Create: link.GCCustomerID == "", Update: link.GCCustomerID != "" && link.ERPVersion != m.GetVersion(),
			Mandate: direct && fp != "" && (fp != link.BankFingerprint || !link.MandateUsable())}
		if !plan.Create && !plan.Update && !plan.Mandate {
			return nil // this version is already applied
		}
		plan.Replaces = link.GCMandateID
		if plan.Replaces == "" {
			plan.Replaces = "first"
		}
		// The link stays locked to the end of this transaction, and the
		// lease's previous holder recorded its result on it, so the plan
		// above is made from everything that holder did.
		recorded, resumed, err := ledger.Claim(ctx, tx, "customer", link.AggregateID(), holder, CustomerLease)
		if err != nil {
			return err
		}
		if resumed {
			return json.Unmarshal(recorded, &plan)
		}
		return ledger.Intend(ctx, tx, "customer", link.AggregateID(), holder, plan, "customer.aligning")
	})
	if err != nil {
		return err
	}
	if ignored {
		// Nor is a mandate requested for it: the request's flow would be
		// prefilled with the old details, in the old bank details'
		// currency. The applied snapshot has asked for what is needed.
		c.log.InfoContext(ctx, "stale customer snapshot ignored", "customer", link.AggregateID(),
			"version", m.GetVersion(), "updated_at", at, "published", published,
			"applied_version", link.ERPVersion, "applied_updated_at", link.ERPUpdatedAt, "applied_published", link.ERPPublishedAt)
		return nil
	}
	if wentBack {
		// Published after the applied snapshot, so read from the ERP after
		// it: the ERP's clock went back (docs/jde.md), worth a look.
		c.log.WarnContext(ctx, "customer snapshot older by updated_at but published later: applied", "customer", link.AggregateID(),
			"version", m.GetVersion(), "updated_at", at, "published", published,
			"applied_version", link.ERPVersion, "applied_updated_at", link.ERPUpdatedAt, "applied_published", link.ERPPublishedAt)
	}
	if !plan.Create && !plan.Update && !plan.Mandate {
		return c.mandateRequested(ctx, route, key, m, holder, direct)
	}
	before := link

	// 2. The calls, with nothing held.
	params := customerParams(m)
	var actions []string
	if plan.Create || link.GCCustomerID == "" {
		cu, existed, err := route.Client.CreateCustomer(ctx, keyPrefix+":customer", params)
		if err != nil {
			return classify("create customer", err)
		}
		link.GCCustomerID = cu.ID
		actions = append(actions, "customer created")
		// Created by an earlier version whose alignment died before it was
		// recorded: its details, not these, are at GoCardless.
		plan.Update = plan.Update || existed
	}
	if plan.Update {
		if _, err := route.Client.UpdateCustomer(ctx, link.GCCustomerID, params); err != nil {
			return classify("update customer", err)
		}
		actions = append(actions, "customer updated")
	}
	link.GCConnectionID = route.GoCardless.ID
	link.Country, link.Language, link.ERPVersion, link.ERPUpdatedAt = m.GetCountryCode(), m.GetLanguage(), m.GetVersion(), at
	link.ERPPublishedAt = published
	var refusal error
	if plan.Mandate {
		if err := c.newMandate(ctx, route, keyPrefix, fp, plan.Replaces, m.GetBankDetails(), &link); err != nil {
			if _, refused := err.(*invalid); !refused {
				return err
			}
			refusal = err
		} else {
			actions = append(actions, "bank account and mandate created")
		}
	}

	// 3. The results, recorded with the lease's release, on the link as it
	// is now: mandate and billing request events record on it without the
	// customer's lease (a mandate authorised, cancelled, its next charge
	// date) while the calls above ran, and writing the link read in step 1
	// back over them lost what they recorded (a fulfilled request's
	// mandate, so its events were dead-lettered as not recorded).
	err = c.ledger.Tx(ctx, func(tx pgx.Tx) error {
		if err := ledger.Release(ctx, tx, "customer", link.AggregateID(), holder); err != nil {
			return err
		}
		now, err := ledger.LockCustomer(ctx, tx, key)
		if err != nil {
			return err
		}
		link = aligned(before, link, now)
		if err := ledger.SaveCustomer(ctx, tx, now, link, "customer.aligned", strings.Join(actions, ", ")); err != nil {
			return err
		}
		if refusal == nil {
			return nil
		}
		// Keep what was created, and say why the mandate was not.
		_, err = ledger.RaiseException(ctx, tx, ledger.Exception{Kind: "mandate_refused", AggregateType: "customer",
			AggregateID: link.AggregateID(), Reason: refusal.Error(),
			DedupKey: "mandate:" + keyPrefix + ":" + fp})
		return err
	})
	if err != nil {
		return err
	}
	return c.mandateRequested(ctx, route, key, m, holder, direct)
}

// newMandate creates the bank account of details and a mandate on it. The
// mandate's key names the mandate it replaces, so a second mandate on the
// same account (after the first failed) is a different, single object.
func (c *Collector) newMandate(ctx context.Context, route accounts.Route, keyPrefix, fp, replaces string, b *mlcv1.BankDetails, link *ledger.CustomerLink) error {
	bp := gocardless.CustomerBankAccountParams{
		AccountHolderName: b.GetAccountHolderName(), AccountNumber: b.GetAccountNumber(), BranchCode: b.GetBranchCode(),
		BankCode: b.GetBankCode(), IBAN: b.GetIban(), CountryCode: b.GetCountryCode(), Currency: b.GetCurrency(),
		AccountType: b.GetAccountType(),
	}
	bp.Links.Customer = link.GCCustomerID
	ba, _, err := route.Client.CreateCustomerBankAccount(ctx, keyPrefix+":bank:"+fp, bp)
	if err != nil {
		return classify("create bank account", err)
	}
	previous := replaces
	if link.GCBankAccountID != ba.ID {
		previous = "first"
	}
	mp := gocardless.MandateParams{Metadata: map[string]string{"erp_customer": link.Key.CustomerID, "company": link.Key.Company}}
	mp.Links.CustomerBankAccount = ba.ID
	mp.Links.Creditor = route.Creditor
	if ba.Currency == "USD" {
		mp.AuthorisationSource = route.GC.ACHAuthorisationSource
	}
	md, _, err := route.Client.CreateMandate(ctx, keyPrefix+":mandate:"+ba.ID+":after:"+previous, mp)
	if err != nil {
		return classify("create mandate", err)
	}
	link.GCBankAccountID, link.GCMandateID, link.CreditorID = ba.ID, md.ID, route.Creditor
	link.MandateStatus, link.MandateScheme, link.BankFingerprint = ledger.MandateStatus(md.Status), md.Scheme, fp
	link.MandateEventAt = time.Time{}
	if d, err := time.Parse(time.DateOnly, md.NextPossibleChargeDate); err == nil {
		link.NextChargeDate = d
	}
	return nil
}

func customerParams(m *mlcv1.CustomerChanged) gocardless.CustomerParams {
	p := gocardless.CustomerParams{
		Email: m.GetEmail(), GivenName: m.GetGivenName(), FamilyName: m.GetFamilyName(), CompanyName: m.GetCompanyName(),
		AddressLine1: m.GetAddressLine1(), AddressLine2: m.GetAddressLine2(), AddressLine3: m.GetAddressLine3(),
		City: m.GetCity(), Region: m.GetRegion(), PostalCode: m.GetPostalCode(), CountryCode: m.GetCountryCode(),
		Language: m.GetLanguage(), PhoneNumber: m.GetPhoneNumber(),
		SwedishIdentityNumber: m.GetSwedishIdentityNumber(), DanishIdentityNumber: m.GetDanishIdentityNumber(),
		Metadata: map[string]string{"erp_customer": m.GetCustomerId(), "company": m.GetErp().GetCompany()},
	}
	if p.CompanyName == "" && p.GivenName == "" && p.FamilyName == "" {
		p.CompanyName = m.GetName()
	}
	return p
}

// bankFingerprint identifies bank details without keeping them: the
// ledger stores this, never the account number.
func bankFingerprint(b *mlcv1.BankDetails) string {
	if b == nil || (b.GetIban() == "" && b.GetAccountNumber() == "") {
		return ""
	}
	h := sha256.Sum256([]byte(strings.Join([]string{
		strings.ToUpper(strings.ReplaceAll(b.GetIban(), " ", "")), b.GetAccountNumber(), b.GetBranchCode(),
		b.GetBankCode(), b.GetCountryCode(), b.GetCurrency(), b.GetAccountHolderName(),
	}, "\x00")))
	return hex.EncodeToString(h[:12])
}

// snapshotAt is the ERP's updated_at of m to the microsecond, as the
// ledger keeps it, so that a snapshot compares equal to itself once
// recorded; zero when the poller sent none.
func snapshotAt(m *mlcv1.CustomerChanged) time.Time {
	ts := m.GetUpdatedAt()
	if ts == nil || !ts.IsValid() || ts.GetSeconds() <= 0 {
		return time.Time{}
	}
	return ts.AsTime().Truncate(time.Microsecond)
}

// stale reports whether a snapshot updated in the ERP at at, and
// published on MLC_ERP at published, is older than the one link holds, and
// so must not be applied over it (the contract,
// proto/mlc/v1/erp_events.proto: versions and updated_at let a consumer
// reject stale snapshots).
//
// Where both publish times are known, the order of publication decides,
// whatever the stamps: it is the order of the ERP's reads. One poller
// polls a connection at a time (platform/fleet's advisory lock) and
// publishes a cycle's reads before the next cycle reads, and a redelivery
// keeps its message's publish time, so the old message redelivered late,
// which this check is for, was published before the snapshot applied over
// it. updated_at does not order them: it can go backwards for a genuinely
// newer change. JD Edwards' is the newest UPMJ/UPMT of the customer's
// rows, the local time of whichever enterprise server wrote the row, so a
// row rewritten by a server whose clock lags, or in the repeated hour of
// a DST fall-back (the jde-poller takes the earlier of the two instants),
// or a customer's newest row deleted, gives a newer snapshot an older
// stamp (docs/jde.md). Judged by updated_at, that change was ignored for
// good (new bank details never applied, the mandate left on the account
// the customer left), and the snapshot before it, redelivered after it,
// was applied over it. The publish time, not the stream sequence: a
// stream re-created in disaster recovery starts its sequence again at 1,
// while its timestamps keep going. Nothing republishes an old ERP message
// onto MLC_ERP under a new publish time: a dead letter is copied to
// MLC_DLQ, where internal/deadletter only makes it an exception, neither
// mlcctl nor the console republishes messages (their replay is of a
// failed collection, at GoCardless), and the pollers publish what they
// read from the ERP now.
//
// Where either publish time is unknown (a link applied before it was
// recorded, a call not made for a delivery) updated_at is all there is,
// and strictly older is stale: applying it could be the redelivered old
// snapshot the check guards against, a mandate on the account the
// customer left. A link without one gets one from the next snapshot
// applied. Where either side also has no updated_at (a link aligned
// before it was recorded, a snapshot without one) nothing orders the two,
// and the snapshot is applied when its version differs, as before; so are
// equal instants with different versions (two changes within the ERP's
// stamp: JD Edwards stamps to the second and its versions, stamp and
// digest, do not order within one, docs/jde.md; IFS's versions are opaque
// ETags), since ignoring it could as well keep the older.
func stale(link ledger.CustomerLink, at, published time.Time) bool {
	if published.Year() > 1 && link.ERPPublishedAt.Year() > 1 {
		return published.Before(link.ERPPublishedAt)
	}
	return at.Year() > 1 && link.ERPUpdatedAt.Year() > 1 && at.Before(link.ERPUpdatedAt)
}

// mandateRequested, in billing_request mode, makes sure a customer without
// a usable mandate has been asked for one (collect/billingrequests.go);
// the direct path has done its work already.
func (c *Collector) mandateRequested(ctx context.Context, route accounts.Route, key ledger.CustomerKey, m *mlcv1.CustomerChanged, holder string, direct bool) error {
	if direct {
		return nil
	}
	return c.requestMandate(ctx, route, key, m, holder)
}

// aligned is the link an alignment records: now, the link as it is at the
// end of the alignment, with what the alignment itself set, read against
// before, the link it started from. The GoCardless customer and the ERP
// snapshot's details are the alignment's own. The bank account and
// mandate are the alignment's only where it changed them (a mandate it
// created, in direct mode); otherwise they are whatever the mandate
// events recorded meanwhile.
func aligned(before, mine, now ledger.CustomerLink) ledger.CustomerLink {
	out := now
	out.GCConnectionID, out.GCCustomerID = mine.GCConnectionID, mine.GCCustomerID
	out.Country, out.Language = mine.Country, mine.Language
	out.ERPVersion, out.ERPUpdatedAt, out.ERPPublishedAt = mine.ERPVersion, mine.ERPUpdatedAt, mine.ERPPublishedAt
	if mine.GCBankAccountID != before.GCBankAccountID || mine.GCMandateID != before.GCMandateID || mine.BankFingerprint != before.BankFingerprint {
		out.GCBankAccountID, out.GCMandateID, out.CreditorID = mine.GCBankAccountID, mine.GCMandateID, mine.CreditorID
		out.MandateStatus, out.MandateScheme, out.BankFingerprint = mine.MandateStatus, mine.MandateScheme, mine.BankFingerprint
		out.MandateEventAt, out.NextChargeDate = mine.MandateEventAt, mine.NextChargeDate
	}
	return out
}
