package gcsim

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

const (
	statusPaused   = "paused"
	statusFinished = "finished"
	// subscriptionAheadDays is how many working days before a charge's
	// submission the subscription creates its payment.
	subscriptionAheadDays = 3
	maxUpcomingPayments   = 10
)

var monthNames = []string{"january", "february", "march", "april", "may", "june", "july",
	"august", "september", "october", "november", "december"}

type subscriptionParams struct {
	Amount           json.RawMessage `json:"amount"`
	Currency         *string         `json:"currency"`
	Name             *string         `json:"name"`
	IntervalUnit     *string         `json:"interval_unit"`
	Interval         *int            `json:"interval"`
	DayOfMonth       *int            `json:"day_of_month"`
	Month            *string         `json:"month"`
	Count            *int            `json:"count"`
	StartDate        *string         `json:"start_date"`
	EndDate          *string         `json:"end_date"`
	PaymentReference *string         `json:"payment_reference"`
	RetryIfPossible  *bool           `json:"retry_if_possible"`
	Metadata         json.RawMessage `json:"metadata"`
	Links            struct {
		Mandate *string `json:"mandate"`
	} `json:"links"`
}

func (s *Sim) createSubscription(r *request) (int, any, *apiError) {
	if aerr := s.idempotencyConflict(r, "subscriptions"); aerr != nil {
		return 0, nil, aerr
	}
	var p subscriptionParams
	if aerr := decodeEnvelope(r, "subscriptions", &p); aerr != nil {
		return 0, nil, aerr
	}
	fe := fieldErrors{resource: "subscriptions"}
	metadata := parseMetadata(p.Metadata, &fe)
	amount, amountOK := parseAmount(p.Amount, "amount", &fe)
	currency := strings.ToUpper(str(p.Currency))
	switch {
	case currency == "":
		fe.add("currency", "is required")
	case !supportedCurrency(currency):
		fe.add("currency", "must be one of AUD, CAD, DKK, EUR, GBP, NZD, SEK, USD")
	}
	unit := str(p.IntervalUnit)
	maxInterval := map[string]int{"weekly": 52, "monthly": 12, "yearly": 1}[unit]
	if unit == "" {
		fe.add("interval_unit", "is required")
	} else if maxInterval == 0 {
		fe.add("interval_unit", "must be weekly, monthly or yearly")
	}
	interval := 1
	if p.Interval != nil {
		interval = *p.Interval
		if interval < 1 || (maxInterval > 0 && interval > maxInterval) {
			fe.add("interval", "must result in at least one charge date per year")
		}
	}
	dom := 0
	if p.DayOfMonth != nil {
		dom = *p.DayOfMonth
		switch {
		case unit == "weekly":
			fe.add("day_of_month", "must not be given for weekly subscriptions")
		case dom != -1 && (dom < 1 || dom > 28):
			fe.add("day_of_month", "must be between 1 and 28, or -1 for the last day of the month")
		}
	}
	// month: "Name of the month on which to charge a customer. Must be
	// lowercase. Only applies when the interval_unit is yearly."
	// (gocardless-pro-java SubscriptionService.java). Its class doc's
	// table says for yearly: month "optional (required if day_of_month
	// provided)", day_of_month "optional (invalid if month not provided)",
	// and its examples call yearly + march without day_of_month "invalid -
	// missing day_of_month": so for yearly both are given or neither.
	var month time.Month
	if !blank(p.Month) {
		i := slices.Index(monthNames, *p.Month)
		switch {
		case unit != "yearly":
			fe.add("month", "may only be given for yearly subscriptions")
		case i < 0 && slices.Contains(monthNames, strings.ToLower(*p.Month)):
			fe.add("month", "must be lowercase, e.g. january")
		case i < 0:
			fe.add("month", "must be the name of a month, e.g. january")
		default:
			month = time.Month(i + 1)
		}
	}
	if unit == "yearly" {
		switch {
		case p.DayOfMonth != nil && blank(p.Month):
			fe.add("month", "is required for yearly subscriptions when day_of_month is given")
		case p.DayOfMonth == nil && !blank(p.Month):
			fe.add("day_of_month", "is required for yearly subscriptions when month is given")
		}
	}
	if p.Count != nil && *p.Count < 1 {
		fe.add("count", "must be greater than 0")
	}
	var start, end time.Time
	if !blank(p.StartDate) {
		var ok bool
		if start, ok = parseDate(*p.StartDate); !ok {
			fe.add("start_date", "must be a date in the format YYYY-MM-DD")
		}
	}
	if !blank(p.EndDate) {
		var ok bool
		if end, ok = parseDate(*p.EndDate); !ok {
			fe.add("end_date", "must be a date in the format YYYY-MM-DD")
		} else if p.Count != nil {
			fe.add("end_date", "must not be given together with count")
		}
	}
	if p.Name != nil {
		checkMaxLen(*p.Name, 255, "name", &fe)
	}
	var m *Mandate
	if blank(p.Links.Mandate) {
		fe.add("links[mandate]", "is required")
	} else {
		m, _ = s.mandates.get(*p.Links.Mandate)
	}
	active := m != nil && slices.Contains(creatableMandateStatuses, m.Status)
	var earliest time.Time
	if m != nil {
		sc, _ := schemeByName(m.Scheme)
		if currency != "" && supportedCurrency(currency) && currency != sc.currency {
			fe.add("currency", "must be "+sc.currency+" for a "+sc.name+" mandate")
		}
		if amountOK {
			checkAmountLimits(amount, sc, "amount", &fe)
		}
		creditor, _ := s.creditors.get(m.Links.Creditor)
		checkPaymentReference(str(p.PaymentReference), sc, creditor, "payment_reference", &fe)
		if active {
			earliest, _ = s.nextChargeDate(m, r.now)
			if !start.IsZero() && rollForward(start).Before(earliest) {
				fe.add("start_date", "must be on or after the mandate's next_possible_charge_date ("+formatDate(earliest)+")")
			}
		}
	}
	if start.IsZero() {
		start = earliest
	}
	if !end.IsZero() && !start.IsZero() && !end.After(start) {
		fe.add("end_date", "must be after start_date")
	}
	sortItems(&fe)
	if aerr := fe.err(); aerr != nil {
		return 0, nil, aerr
	}
	if m == nil {
		return 0, nil, linkNotFound("subscriptions", "links[mandate]")
	}
	if !active {
		return 0, nil, stateError("mandate_is_inactive",
			"The mandate for this subscription is "+m.Status+", so subscriptions cannot be created against it")
	}
	sub := &Subscription{
		ID:               s.newID(prefixSubscription),
		CreatedAt:        formatTime(r.now),
		Amount:           amount,
		Currency:         currency,
		Status:           statusActive,
		Name:             str(p.Name),
		StartDate:        formatDate(start),
		IntervalUnit:     unit,
		Interval:         interval,
		Count:            p.Count,
		PaymentReference: str(p.PaymentReference),
		RetryIfPossible:  p.RetryIfPossible != nil && *p.RetryIfPossible,
		Links:            SubscriptionLinks{Mandate: m.ID},
		Metadata:         nonNil(metadata),
		seq:              s.nextSeq(),
		created:          r.now,
	}
	if p.DayOfMonth != nil {
		sub.DayOfMonth = &dom
	}
	if !end.IsZero() {
		sub.EndDate = formatDate(end)
	}
	if unit == "yearly" {
		if month == 0 {
			month = start.Month()
		}
		sub.Month = monthNames[month-1]
	}
	sub.first = firstCharge(unit, start, dom, month)
	s.subs.add(sub.ID, sub)
	s.rememberKey(r, "subscriptions", sub.ID)
	s.emit(r.now, "subscriptions", "created", map[string]string{"subscription": sub.ID},
		EventDetails{Origin: originAPI, Cause: "subscription_created", Description: "Subscription created via the API."},
		nil, sub.Metadata)
	s.scheduleNextCharge(sub, r.now)
	return http.StatusCreated, envelope("subscriptions", s.viewSubscription(sub)), nil
}

// firstCharge is the first (unrolled) charge date on or after start that
// fits the schedule.
func firstCharge(unit string, start time.Time, dom int, month time.Month) time.Time {
	switch unit {
	case "monthly":
		if dom == 0 {
			return start
		}
		d := dayIn(start.Year(), start.Month(), dom)
		if d.Before(start) {
			d = dayIn(start.Year(), start.Month()+1, dom)
		}
		return d
	case "yearly":
		day := dom
		if day == 0 {
			day = start.Day()
		}
		d := dayIn(start.Year(), month, day)
		if d.Before(start) {
			d = dayIn(start.Year()+1, month, day)
		}
		return d
	}
	return start
}

// dayIn returns day (or, for -1 or a day past the end, the last day) of the
// month; time.Date normalizes month overflow.
func dayIn(year int, month time.Month, day int) time.Time {
	last := time.Date(year, month+1, 0, 0, 0, 0, 0, time.UTC)
	if day == -1 || day > last.Day() {
		return last
	}
	return time.Date(year, month, day, 0, 0, 0, 0, time.UTC)
}

// chargeDate is the k-th (from 0) charge date, rolled to a working day.
func (sub *Subscription) chargeDate(k int) time.Time {
	dom := 0
	if sub.DayOfMonth != nil {
		dom = *sub.DayOfMonth
	}
	if dom == 0 {
		dom = sub.first.Day()
	}
	var raw time.Time
	switch sub.IntervalUnit {
	case "weekly":
		raw = sub.first.AddDate(0, 0, 7*sub.Interval*k)
	case "monthly":
		raw = dayIn(sub.first.Year(), sub.first.Month()+time.Month(sub.Interval*k), dom)
	default:
		raw = dayIn(sub.first.Year()+sub.Interval*k, sub.first.Month(), dom)
	}
	return rollForward(raw)
}

// hasCharge reports whether the schedule has a k-th charge.
func (sub *Subscription) hasCharge(k int) bool {
	if sub.Count != nil && k >= *sub.Count {
		return false
	}
	if sub.EndDate != "" {
		end, _ := parseDate(sub.EndDate)
		return !sub.chargeDate(k).After(end)
	}
	return true
}

// scheduleNextCharge arranges for the payment of charge sub.next to be
// created ahead of its submission. Any earlier arrangement is superseded.
func (s *Sim) scheduleNextCharge(sub *Subscription, now time.Time) {
	sub.gen++
	gen, k := sub.gen, sub.next
	sc, _ := schemeByName(sub.schemeName(s))
	at := runNoEarlierThan(addWorkingDays(sub.chargeDate(k), -(sc.leadDays+subscriptionAheadDays)), now)
	s.schedule(at, func(at time.Time) {
		if sub.gen == gen {
			s.chargeSubscription(sub, k, at)
		}
	})
}

func (sub *Subscription) schemeName(s *Sim) string {
	m, _ := s.mandates.get(sub.Links.Mandate)
	return m.Scheme
}

// chargeSubscription creates the payment of charge k, or skips it while
// the subscription is paused for a number of cycles.
func (s *Sim) chargeSubscription(sub *Subscription, k int, at time.Time) {
	links := map[string]string{"subscription": sub.ID}
	switch {
	case sub.Status == statusPaused && sub.pauseCycles > 0:
		sub.pauseCycles--
		sub.next = k + 1
		if sub.pauseCycles == 0 {
			sub.Status = statusActive
			s.emit(at, "subscriptions", "resumed", links, EventDetails{Origin: originGoCardless,
				Cause: "subscription_resumed", Description: "The subscription resumed after its pause cycles."}, nil, sub.Metadata)
		}
	case sub.Status != statusActive:
		return
	default:
		m, _ := s.mandates.get(sub.Links.Mandate)
		cd := sub.chargeDate(k)
		if earliest, ok := s.nextChargeDate(m, at); ok && cd.Before(earliest) {
			cd = earliest
		}
		p := s.newPayment(m, sub.Amount, cd, sub.PaymentReference, at)
		p.Links.Subscription = sub.ID
		p.RetryIfPossible = sub.RetryIfPossible
		s.emit(at, "payments", "created", map[string]string{"payment": p.ID, "subscription": sub.ID},
			EventDetails{Origin: originGoCardless, Cause: "payment_created", Description: "Payment created by a subscription."},
			nil, p.Metadata)
		s.emit(at, "subscriptions", "payment_created", map[string]string{"subscription": sub.ID, "payment": p.ID},
			EventDetails{Origin: originGoCardless, Cause: "payment_created", Description: "Payment created by a subscription."},
			nil, sub.Metadata)
		s.scheduleSubmission(p, at)
		sub.next = k + 1
	}
	if !sub.hasCharge(sub.next) {
		sub.Status = statusFinished
		s.emit(at, "subscriptions", "finished", links, EventDetails{Origin: originGoCardless,
			Cause: "subscription_finished", Description: "The subscription has finished."}, nil, sub.Metadata)
		return
	}
	s.scheduleNextCharge(sub, at)
}

func (s *Sim) viewSubscription(sub *Subscription) Subscription {
	v := sub.clone()
	v.UpcomingPayments = []UpcomingPayment{}
	if sub.Status == statusActive {
		for k := sub.next; len(v.UpcomingPayments) < maxUpcomingPayments && sub.hasCharge(k); k++ {
			v.UpcomingPayments = append(v.UpcomingPayments,
				UpcomingPayment{ChargeDate: formatDate(sub.chargeDate(k)), Amount: sub.Amount})
		}
	}
	return v
}

func (s *Sim) listSubscriptions(r *request) (int, any, *apiError) {
	mandate, status, customer := eq(r.query, "mandate"), eq(r.query, "status"), eq(r.query, "customer")
	return list("subscriptions", s.subs.list, r.query,
		func(id string) (uint64, bool) { return seqOf(&s.subs, id) },
		func(sub *Subscription) time.Time { return sub.created },
		func(sub *Subscription) bool {
			m, _ := s.mandates.get(sub.Links.Mandate)
			return mandate(sub.Links.Mandate) && status(sub.Status) && customer(m.Links.Customer)
		},
		s.viewSubscription)
}

func (s *Sim) getSubscription(r *request) (int, any, *apiError) {
	sub, ok := s.subs.get(r.id())
	if !ok {
		return 0, nil, notFound()
	}
	return 200, envelope("subscriptions", s.viewSubscription(sub)), nil
}

func (s *Sim) updateSubscription(r *request) (int, any, *apiError) {
	sub, ok := s.subs.get(r.id())
	if !ok {
		return 0, nil, notFound()
	}
	var p struct {
		Name     *string         `json:"name"`
		Metadata json.RawMessage `json:"metadata"`
	}
	if aerr := decodeEnvelope(r, "subscriptions", &p); aerr != nil {
		return 0, nil, aerr
	}
	fe := fieldErrors{resource: "subscriptions"}
	md := parseMetadata(p.Metadata, &fe)
	if p.Name != nil {
		checkMaxLen(*p.Name, 255, "name", &fe)
	}
	if aerr := fe.err(); aerr != nil {
		return 0, nil, aerr
	}
	if p.Metadata != nil {
		sub.Metadata = nonNil(md)
	}
	if p.Name != nil {
		sub.Name = *p.Name
	}
	return 200, envelope("subscriptions", s.viewSubscription(sub)), nil
}

// subscriptionAction decodes an action's metadata and finds the
// subscription.
func (s *Sim) subscriptionAction(r *request) (*Subscription, actionData, map[string]string, *apiError) {
	return action(&s.subs, r, func(data actionData, fe *fieldErrors) {
		if data.PauseCycles != nil && *data.PauseCycles < 1 {
			fe.add("pause_cycles", "must be greater than 0")
		}
	})
}

// cancelSubscription stops the subscription and cancels its payments that
// have not been submitted yet.
func (s *Sim) cancelSubscription(r *request) (int, any, *apiError) {
	sub, _, md, aerr := s.subscriptionAction(r)
	if aerr != nil {
		return 0, nil, aerr
	}
	if sub.Status != statusActive && sub.Status != statusPaused {
		return 0, nil, stateError("cancellation_failed", "The subscription is "+sub.Status+" and cannot be cancelled")
	}
	sub.Status = statusCancelled
	sub.gen++
	parent := s.emit(r.now, "subscriptions", "cancelled", map[string]string{"subscription": sub.ID},
		EventDetails{Origin: originAPI, Cause: "subscription_cancelled", Description: "The subscription was cancelled at your request."},
		md, sub.Metadata)
	for _, p := range s.payments.list {
		if p.Links.Subscription == sub.ID && p.Status == statusPendingSubmission {
			p.Status = statusCancelled
			s.emit(r.now, "payments", "cancelled", map[string]string{"payment": p.ID, "parent_event": parent.ID},
				EventDetails{Origin: originAPI, Cause: "payment_cancelled", Description: "The payment's subscription was cancelled."},
				md, p.Metadata)
		}
	}
	return 200, envelope("subscriptions", s.viewSubscription(sub)), nil
}

// pauseSubscription stops payment creation, for pause_cycles charges or
// until resumed.
func (s *Sim) pauseSubscription(r *request) (int, any, *apiError) {
	sub, data, md, aerr := s.subscriptionAction(r)
	if aerr != nil {
		return 0, nil, aerr
	}
	if sub.Status != statusActive {
		return 0, nil, stateError("subscription_not_active", "The subscription is "+sub.Status+" and cannot be paused")
	}
	sub.Status = statusPaused
	sub.pauseCycles = 0
	if data.PauseCycles != nil {
		sub.pauseCycles = *data.PauseCycles
	}
	s.emit(r.now, "subscriptions", "paused", map[string]string{"subscription": sub.ID},
		EventDetails{Origin: originAPI, Cause: "subscription_paused", Description: "The subscription was paused at your request."},
		md, sub.Metadata)
	return 200, envelope("subscriptions", s.viewSubscription(sub)), nil
}

// resumeSubscription restarts payment creation from the first charge date
// that can still be collected.
func (s *Sim) resumeSubscription(r *request) (int, any, *apiError) {
	sub, _, md, aerr := s.subscriptionAction(r)
	if aerr != nil {
		return 0, nil, aerr
	}
	if sub.Status != statusPaused {
		return 0, nil, stateError("subscription_not_paused", "The subscription is "+sub.Status+" and cannot be resumed")
	}
	m, _ := s.mandates.get(sub.Links.Mandate)
	earliest, _ := s.nextChargeDate(m, r.now)
	for sub.hasCharge(sub.next) && sub.chargeDate(sub.next).Before(earliest) {
		sub.next++
	}
	sub.Status = statusActive
	sub.pauseCycles = 0
	s.emit(r.now, "subscriptions", "resumed", map[string]string{"subscription": sub.ID},
		EventDetails{Origin: originAPI, Cause: "subscription_resumed", Description: "The subscription was resumed at your request."},
		md, sub.Metadata)
	if !sub.hasCharge(sub.next) {
		sub.Status = statusFinished
		s.emit(r.now, "subscriptions", "finished", map[string]string{"subscription": sub.ID},
			EventDetails{Origin: originGoCardless, Cause: "subscription_finished", Description: "The subscription has finished."},
			nil, sub.Metadata)
	} else {
		s.scheduleNextCharge(sub, r.now)
	}
	return 200, envelope("subscriptions", s.viewSubscription(sub)), nil
}
