package poll

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/erpmsg"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
)

// schemaVersion is the version of the event contracts this poller writes.
const schemaVersion = 1

// Rejected is a row that could not become an event.
type Rejected struct {
	Kind     string
	Company  string
	Key      string
	Version  string
	Modified time.Time
	Reason   string
}

func erpRef(connection, company string) *mlcv1.ErpRef {
	return &mlcv1.ErpRef{Erp: mlcv1.Erp_ERP_IFS, Connection: connection, Company: company}
}

func message(connection, company, kind, key, version string, m proto.Message) (bus.Msg, error) {
	data, err := proto.Marshal(m)
	if err != nil {
		return bus.Msg{}, fmt.Errorf("encode %s: %w", kind, err)
	}
	return erpmsg.Msg(erpmsg.IFS, connection, company, kind, key, version, data)
}

func rejected(kind, company string, bad ifscloud.Invalid) Rejected {
	return Rejected{Kind: kind, Company: company, Key: bad.Key, Version: bad.Version, Modified: bad.Modified, Reason: bad.Err.Error()}
}

// InvoiceReady is the event for an invoice as read. Amounts are copied as
// the exact decimal text IFS sent.
func InvoiceReady(connection string, inv ifscloud.Invoice) *mlcv1.InvoiceReady {
	return &mlcv1.InvoiceReady{
		SchemaVersion: schemaVersion,
		Erp:           erpRef(connection, inv.Company),
		Invoice:       &mlcv1.InvoiceKey{InvoiceId: inv.InvoiceID, InvoiceNo: inv.InvoiceNo},
		CustomerId:    inv.CustomerID,
		Version:       inv.ETag,
		Amount:        inv.OpenAmount,
		GrossAmount:   inv.GrossAmount,
		Currency:      inv.Currency,
		InvoiceDate:   inv.InvoiceDate,
		DueDate:       inv.DueDate,
		PaymentTerms:  inv.PaymentTerms,
		BusinessUnit:  inv.BusinessUnit,
		UpdatedAt:     timestamppb.New(inv.Modified),
		ErpFields:     inv.Fields,
	}
}

// CustomerChanged is the event for a customer as read.
func CustomerChanged(connection string, cu ifscloud.Customer) *mlcv1.CustomerChanged {
	ev := &mlcv1.CustomerChanged{
		SchemaVersion: schemaVersion,
		Erp:           erpRef(connection, cu.Company),
		CustomerId:    cu.CustomerID,
		Version:       cu.ETag,
		Name:          cu.Name,
		Email:         cu.Email,
		PhoneNumber:   cu.Phone,
		AddressLine1:  cu.Address1,
		AddressLine2:  cu.Address2,
		City:          cu.City,
		Region:        cu.Region,
		PostalCode:    cu.PostalCode,
		CountryCode:   cu.Country,
		Language:      cu.Language,
		UpdatedAt:     timestamppb.New(cu.Changed()),
		ErpFields:     cu.Fields,
	}
	if b := cu.Bank; b != (ifscloud.BankAccount{}) {
		ev.BankDetails = &mlcv1.BankDetails{
			AccountHolderName: b.Holder,
			Iban:              b.IBAN,
			AccountNumber:     b.AccountNumber,
			BranchCode:        b.BranchCode,
			BankCode:          b.BankCode,
			CountryCode:       b.Country,
			Currency:          b.Currency,
		}
	}
	// The contract carries the identity number only for the schemes that
	// need it (Autogiro, Betalingsservice), decided by the account currency.
	switch cu.Bank.Currency {
	case "SEK":
		ev.SwedishIdentityNumber = cu.IdentityNumber
	case "DKK":
		ev.DanishIdentityNumber = cu.IdentityNumber
	}
	return ev
}

func invoiceMessages(connection, company, kind string, pg ifscloud.InvoicePage) ([]bus.Msg, []Rejected) {
	msgs := make([]bus.Msg, 0, len(pg.Invoices))
	var bad []Rejected
	for _, inv := range pg.Invalid {
		bad = append(bad, rejected(kind, company, inv))
	}
	for _, inv := range pg.Invoices {
		m, err := message(connection, inv.Company, kind, inv.InvoiceID, inv.ETag, InvoiceReady(connection, inv))
		if err != nil {
			bad = append(bad, Rejected{Kind: kind, Company: inv.Company, Key: inv.InvoiceID, Version: inv.ETag, Modified: inv.Modified, Reason: err.Error()})
			continue
		}
		msgs = append(msgs, m)
	}
	return msgs, bad
}

func customerMessages(connection, company, kind string, pg ifscloud.CustomerPage) ([]bus.Msg, []Rejected) {
	msgs := make([]bus.Msg, 0, len(pg.Customers))
	var bad []Rejected
	for _, cu := range pg.Invalid {
		bad = append(bad, rejected(kind, company, cu))
	}
	for _, cu := range pg.Customers {
		m, err := message(connection, cu.Company, kind, cu.CustomerID, cu.ETag, CustomerChanged(connection, cu))
		if err != nil {
			bad = append(bad, Rejected{Kind: kind, Company: cu.Company, Key: cu.CustomerID, Version: cu.ETag, Modified: cu.Modified, Reason: err.Error()})
			continue
		}
		msgs = append(msgs, m)
	}
	return msgs, bad
}
