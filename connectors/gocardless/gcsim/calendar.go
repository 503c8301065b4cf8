package gcsim

import "time"

// The simulator's banking calendar is deliberately simple and the same for
// every scheme: Saturdays, Sundays, 1 January, 25 and 26 December are not
// working days. Daily processing (submissions, confirmations, payouts)
// happens at runHour UTC on working days.
const runHour = 9

const dateLayout = "2006-01-02"

// timestampLayout is how GoCardless writes timestamps: UTC, milliseconds.
const timestampLayout = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timestampLayout) }

func formatDate(d time.Time) string { return d.Format(dateLayout) }

// dateOf returns the UTC calendar date of t, at midnight.
func dateOf(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func parseDate(s string) (time.Time, bool) {
	d, err := time.Parse(dateLayout, s)
	if err != nil {
		return time.Time{}, false
	}
	return d, true
}

func isWorkingDay(d time.Time) bool {
	switch d.Weekday() {
	case time.Saturday, time.Sunday:
		return false
	}
	_, m, day := d.Date()
	switch {
	case m == time.January && day == 1, m == time.December && (day == 25 || day == 26):
		return false
	}
	return true
}

// rollForward returns d if it is a working day, else the next one.
func rollForward(d time.Time) time.Time {
	d = dateOf(d)
	for !isWorkingDay(d) {
		d = d.AddDate(0, 0, 1)
	}
	return d
}

// addWorkingDays returns the working day n working days after d (rolled
// forward first); n may be negative.
func addWorkingDays(d time.Time, n int) time.Time {
	d = rollForward(d)
	step := 1
	if n < 0 {
		step, n = -1, -n
	}
	for n > 0 {
		d = d.AddDate(0, 0, step)
		if isWorkingDay(d) {
			n--
		}
	}
	return d
}

// runAt is the instant of the daily processing run on date d.
func runAt(d time.Time) time.Time {
	return dateOf(d).Add(runHour * time.Hour)
}

// nextRun returns the first processing run strictly after t.
func nextRun(t time.Time) time.Time {
	d := dateOf(t)
	for {
		if isWorkingDay(d) && runAt(d).After(t) {
			return runAt(d)
		}
		d = d.AddDate(0, 0, 1)
	}
}

// runNoEarlierThan returns the run on d (rolled forward) or, if that has
// already passed, the next run after now.
func runNoEarlierThan(d, now time.Time) time.Time {
	at := runAt(rollForward(d))
	if at.Before(now) {
		return nextRun(now)
	}
	return at
}
