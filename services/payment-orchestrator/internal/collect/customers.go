package collect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
// creditor. The customer's link stays locked throughout, so two events of
// one customer never race.
func (c *Collector) Customer(ctx context.Context, m *mlcv1.CustomerChanged) error {
	aggID := m.GetErp().GetConnection() + ":" + m.GetErp().GetCompany() + ":" + m.GetCustomerId()
	dedup := "customer:" + aggID + ":" + m.GetVersion()
	route, erp, err := c.route(ctx, m.GetErp())
	if err == nil {
		err = c.alignCustomer(ctx, route, erp, m)
	}
	return c.settle(ctx, err, "customer", aggID, dedup, map[string]any{"version": m.GetVersion()})
}

func (c *Collector) alignCustomer(ctx context.Context, route accounts.Route, erp string, m *mlcv1.CustomerChanged) error {
	if m.GetCustomerId() == "" {
		return invalidf("invalid_customer", "customer event without customer id")
	}
	key := ledger.CustomerKey{ERP: erp, ConnectionID: route.ERP.ID, Company: route.Company, CustomerID: m.GetCustomerId()}
	keyPrefix := fmt.Sprintf("mlc:%s:%d:%s:%s", erp, route.ERP.ID, route.Company, m.GetCustomerId())
	release, err := c.hold(ctx)
	if err != nil {
		return err
	}
	defer release()
	return c.ledger.Tx(ctx, func(tx pgx.Tx) error {
		link, err := ledger.LockCustomer(ctx, tx, key)
		if err != nil {
			return err
		}
		before := link
		fp := bankFingerprint(m.GetBankDetails())
		if link.GCCustomerID != "" && link.ERPVersion == m.GetVersion() && (fp == "" || (fp == link.BankFingerprint && link.MandateUsable())) {
			return nil // this version is already applied
		}

		params := customerParams(m)
		var actions []string
		switch {
		case link.GCCustomerID == "":
			cu, _, err := route.Client.CreateCustomer(ctx, keyPrefix+":customer", params)
			if err != nil {
				return classify("create customer", err)
			}
			link.GCCustomerID = cu.ID
			actions = append(actions, "customer created")
		case link.ERPVersion != m.GetVersion():
			if _, err := route.Client.UpdateCustomer(ctx, link.GCCustomerID, params); err != nil {
				return classify("update customer", err)
			}
			actions = append(actions, "customer updated")
		}
		link.GCConnectionID = route.GoCardless.ID
		link.Country, link.Language, link.ERPVersion = m.GetCountryCode(), m.GetLanguage(), m.GetVersion()

		if fp != "" && (fp != link.BankFingerprint || !link.MandateUsable()) {
			if err := c.newMandate(ctx, route, keyPrefix, fp, m.GetBankDetails(), &link); err != nil {
				if _, refused := err.(*invalid); refused {
					// Keep what was created, and say why the mandate was not.
					if err := ledger.SaveCustomer(ctx, tx, before, link, "customer.aligned", strings.Join(actions, ", ")); err != nil {
						return err
					}
					_, xerr := ledger.RaiseException(ctx, tx, ledger.Exception{Kind: "mandate_refused", AggregateType: "customer",
						AggregateID: fmt.Sprintf("%s:%s:%s", route.ERP.Name, route.Company, m.GetCustomerId()), Reason: err.Error(),
						DedupKey: "mandate:" + keyPrefix + ":" + fp})
					return xerr
				}
				return err
			}
			actions = append(actions, "bank account and mandate created")
		}
		return ledger.SaveCustomer(ctx, tx, before, link, "customer.aligned", strings.Join(actions, ", "))
	})
}

// newMandate creates the bank account of details and a mandate on it. The
// mandate's key names the mandate it replaces, so a second mandate on the
// same account (after the first failed) is a different, single object.
func (c *Collector) newMandate(ctx context.Context, route accounts.Route, keyPrefix, fp string, b *mlcv1.BankDetails, link *ledger.CustomerLink) error {
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
	previous := link.GCMandateID
	if previous == "" || link.GCBankAccountID != ba.ID {
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
	link.MandateStatus, link.MandateScheme, link.BankFingerprint = md.Status, md.Scheme, fp
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
