package gcsim

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// idempotencyConflict answers a create whose Idempotency-Key already
// created a resource of that type for this token: 409 invalid_state with
// the existing resource's id, which is how GoCardless tells a retrying
// client "this already happened".
func (s *Sim) idempotencyConflict(r *request, resource string) *apiError {
	if r.idemKey == "" {
		return nil
	}
	id, ok := s.idem[idemScope{token: r.token, resource: resource, key: r.idemKey}]
	if !ok {
		return nil
	}
	const msg = "A resource has already been created with this idempotency key"
	return &apiError{status: http.StatusConflict, typ: typeInvalidState, message: msg,
		errors: []errorItem{{Reason: "idempotent_creation_conflict", Message: msg,
			Links: map[string]string{"conflicting_resource_id": id}}}}
}

// rememberKey records that r's Idempotency-Key created id. Only successful
// creates consume a key, so a request refused by validation can be
// corrected and resent with the same key.
func (s *Sim) rememberKey(r *request, resource, id string) {
	if r.idemKey != "" {
		s.idem[idemScope{token: r.token, resource: resource, key: r.idemKey}] = id
	}
}

// Creditors.

func (s *Sim) listCreditors(r *request) (int, any, *apiError) {
	return list("creditors", s.creditors.list, r.query,
		func(id string) (uint64, bool) { return seqOf(&s.creditors, id) },
		nil, nil, func(c *Creditor) Creditor { return c.clone() })
}

func (s *Sim) getCreditor(r *request) (int, any, *apiError) {
	c, ok := s.creditors.get(r.id())
	if !ok {
		return 0, nil, notFound()
	}
	return 200, envelope("creditors", c.clone()), nil
}

// Customers.

type customerParams struct {
	Email                 *string         `json:"email"`
	GivenName             *string         `json:"given_name"`
	FamilyName            *string         `json:"family_name"`
	CompanyName           *string         `json:"company_name"`
	AddressLine1          *string         `json:"address_line1"`
	AddressLine2          *string         `json:"address_line2"`
	AddressLine3          *string         `json:"address_line3"`
	City                  *string         `json:"city"`
	Region                *string         `json:"region"`
	PostalCode            *string         `json:"postal_code"`
	CountryCode           *string         `json:"country_code"`
	Language              *string         `json:"language"`
	PhoneNumber           *string         `json:"phone_number"`
	SwedishIdentityNumber *string         `json:"swedish_identity_number"`
	DanishIdentityNumber  *string         `json:"danish_identity_number"`
	Metadata              json.RawMessage `json:"metadata"`
}

// apply copies the given fields onto c.
func (p *customerParams) apply(c *Customer) {
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	set(&c.Email, p.Email)
	set(&c.GivenName, p.GivenName)
	set(&c.FamilyName, p.FamilyName)
	set(&c.CompanyName, p.CompanyName)
	set(&c.AddressLine1, p.AddressLine1)
	set(&c.AddressLine2, p.AddressLine2)
	set(&c.AddressLine3, p.AddressLine3)
	set(&c.City, p.City)
	set(&c.Region, p.Region)
	set(&c.PostalCode, p.PostalCode)
	set(&c.CountryCode, p.CountryCode)
	set(&c.Language, p.Language)
	set(&c.PhoneNumber, p.PhoneNumber)
	set(&c.SwedishIdentityNumber, p.SwedishIdentityNumber)
	set(&c.DanishIdentityNumber, p.DanishIdentityNumber)
}

// validateCustomer checks the customer c would become.
func validateCustomer(c *Customer, fe *fieldErrors) {
	if c.CompanyName == "" {
		if c.GivenName == "" {
			fe.add("given_name", "is required unless company_name is provided")
		}
		if c.FamilyName == "" {
			fe.add("family_name", "is required unless company_name is provided")
		}
	}
	if c.Email != "" && !validEmail(c.Email) {
		fe.add("email", "is not a valid email address")
	}
	if c.CountryCode != "" && !validCountry(c.CountryCode) {
		fe.add("country_code", "is not a valid ISO 3166-1 alpha-2 country code")
	}
	if c.Language != "" && !validLanguage(c.Language) {
		fe.add("language", "must be an ISO 639-1 language code")
	}
	for field, v := range map[string]string{
		"email": c.Email, "given_name": c.GivenName, "family_name": c.FamilyName, "company_name": c.CompanyName,
		"address_line1": c.AddressLine1, "address_line2": c.AddressLine2, "address_line3": c.AddressLine3,
		"city": c.City, "region": c.Region, "postal_code": c.PostalCode, "phone_number": c.PhoneNumber,
	} {
		checkMaxLen(v, 255, field, fe)
	}
	sortItems(fe)
}

func (s *Sim) createCustomer(r *request) (int, any, *apiError) {
	if aerr := s.idempotencyConflict(r, "customers"); aerr != nil {
		return 0, nil, aerr
	}
	var p customerParams
	if aerr := decodeEnvelope(r, "customers", &p); aerr != nil {
		return 0, nil, aerr
	}
	fe := fieldErrors{resource: "customers"}
	c := &Customer{Language: "en"}
	p.apply(c)
	c.Metadata = parseMetadata(p.Metadata, &fe)
	validateCustomer(c, &fe)
	if aerr := fe.err(); aerr != nil {
		return 0, nil, aerr
	}
	c.ID = s.newID(prefixCustomer)
	c.seq = s.nextSeq()
	c.created = r.now
	c.CreatedAt = formatTime(r.now)
	c.Metadata = nonNil(c.Metadata)
	s.customers.add(c.ID, c)
	s.rememberKey(r, "customers", c.ID)
	return http.StatusCreated, envelope("customers", c.clone()), nil
}

func (s *Sim) listCustomers(r *request) (int, any, *apiError) {
	email := eq(r.query, "email")
	return list("customers", s.customers.list, r.query,
		func(id string) (uint64, bool) { return seqOf(&s.customers, id) },
		func(c *Customer) time.Time { return c.created },
		func(c *Customer) bool { return email(c.Email) },
		func(c *Customer) Customer { return c.clone() })
}

func (s *Sim) getCustomer(r *request) (int, any, *apiError) {
	c, ok := s.customers.get(r.id())
	if !ok {
		return 0, nil, notFound()
	}
	return 200, envelope("customers", c.clone()), nil
}

func (s *Sim) updateCustomer(r *request) (int, any, *apiError) {
	c, ok := s.customers.get(r.id())
	if !ok {
		return 0, nil, notFound()
	}
	var p customerParams
	if aerr := decodeEnvelope(r, "customers", &p); aerr != nil {
		return 0, nil, aerr
	}
	fe := fieldErrors{resource: "customers"}
	updated := c.clone()
	p.apply(&updated)
	if p.Metadata != nil {
		updated.Metadata = nonNil(parseMetadata(p.Metadata, &fe))
	}
	validateCustomer(&updated, &fe)
	if aerr := fe.err(); aerr != nil {
		return 0, nil, aerr
	}
	*c = updated
	return 200, envelope("customers", c.clone()), nil
}

// sortItems orders validation errors by request pointer, so that responses
// are stable whatever order the checks ran in.
func sortItems(fe *fieldErrors) {
	slices.SortStableFunc(fe.items, func(a, b errorItem) int {
		return strings.Compare(a.RequestPointer, b.RequestPointer)
	})
}
