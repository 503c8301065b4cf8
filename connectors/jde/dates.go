package jde

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrBadDate is wrapped by every date and time parsing error.
var ErrBadDate = errors.New("jde: bad date")

// Date is a calendar date without a time of day or zone, as JDE keeps it.
// The zero Date is JDE's blank date (Julian 0).
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// IsZero reports whether d is the blank date.
func (d Date) IsZero() bool { return d == Date{} }

// String formats d as YYYY-MM-DD, or "" for the blank date.
func (d Date) String() string {
	if d.IsZero() {
		return ""
	}
	return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day)
}

// Julian returns d as JDE's CYYDDD number (C = centuries after 1900), 0 for
// the blank date.
func (d Date) Julian() int {
	if d.IsZero() {
		return 0
	}
	t := time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC)
	return (d.Year-1900)/100*100000 + d.Year%100*1000 + t.YearDay()
}

// Time returns d at hh:mm:ss (JDE's HHMMSS time-of-day number, such as
// UPMT) in loc.
func (d Date) Time(hhmmss int, loc *time.Location) time.Time {
	return time.Date(d.Year, d.Month, d.Day, hhmmss/10000, hhmmss/100%100, hhmmss%100, 0, loc)
}

// DateOf returns the calendar date of t in t's location.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date{Year: y, Month: m, Day: d}
}

// ParseJulian converts a CYYDDD number: 126001 is 2026-01-01, 99365 is
// 1999-12-31, 100001 is 2000-01-01 and 0 is the blank date. The day of the
// year must exist in that year (DDD 366 only in leap years).
func ParseJulian(n int) (Date, error) {
	if n == 0 {
		return Date{}, nil
	}
	if n < 0 || n > 999366 {
		return Date{}, fmt.Errorf("%w: julian %d out of range", ErrBadDate, n)
	}
	year := 1900 + n/100000*100 + n/1000%100
	day := n % 1000
	if day < 1 || day > daysIn(year) {
		return Date{}, fmt.Errorf("%w: julian %d: day %d does not exist in %d", ErrBadDate, n, day, year)
	}
	return DateOf(time.Date(year, time.January, day, 0, 0, 0, 0, time.UTC)), nil
}

func daysIn(year int) int {
	if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
		return 366
	}
	return 365
}

// ParseTimeOfDay checks a JDE HHMMSS time-of-day number (such as UPMT) and
// returns it unchanged.
func ParseTimeOfDay(text string) (int, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(text)
	if err != nil || n < 0 || n/10000 > 23 || n/100%100 > 59 || n%100 > 59 {
		return 0, fmt.Errorf("%w: time of day %q is not HHMMSS", ErrBadDate, text)
	}
	return n, nil
}

// DateFormat is a user's date format as AIS reports it at login
// (userInfo.dateFormat and dateSeperator): the order of day (D), month (M)
// and year (Y two digits, E four digits), e.g. "MDE" with "/" for
// 01/31/2026.
type DateFormat struct {
	Order     string
	Separator string
}

// DefaultDateFormat is what AIS answers for a user without a preference.
var DefaultDateFormat = DateFormat{Order: "MDE", Separator: "/"}

// ParseDate reads a date column however AIS returned it: a Julian CYYDDD
// number (as number or text, up to 6 digits), a compact YYYYMMDD, an ISO
// YYYY-MM-DD, or text formatted in f. Blank text and 0 are the blank date.
func ParseDate(text string, f DateFormat) (Date, error) {
	text = strings.TrimSpace(text)
	if text == "" || text == "0" {
		return Date{}, nil
	}
	if isDigits(text) {
		n, _ := strconv.Atoi(text)
		switch {
		case len(text) <= 6:
			return ParseJulian(n)
		case len(text) == 8:
			return civil(n/10000, n/100%100, n%100, text)
		}
		return Date{}, fmt.Errorf("%w: %q is neither Julian CYYDDD nor YYYYMMDD", ErrBadDate, text)
	}
	if len(text) == 10 && text[4] == '-' && text[7] == '-' {
		y, errY := strconv.Atoi(text[:4])
		m, errM := strconv.Atoi(text[5:7])
		d, errD := strconv.Atoi(text[8:])
		if errY == nil && errM == nil && errD == nil {
			return civil(y, m, d, text)
		}
	}
	return parseFormatted(text, f)
}

func parseFormatted(text string, f DateFormat) (Date, error) {
	order := strings.ToUpper(f.Order)
	if len(order) != 3 || f.Separator == "" {
		return Date{}, fmt.Errorf("%w: %q: date format %q with separator %q is unusable", ErrBadDate, text, f.Order, f.Separator)
	}
	parts := strings.Split(text, f.Separator)
	if len(parts) != 3 {
		return Date{}, fmt.Errorf("%w: %q does not match format %s with separator %q", ErrBadDate, text, order, f.Separator)
	}
	var y, m, d int
	seen := map[rune]bool{}
	for i, c := range order {
		p := strings.TrimSpace(parts[i])
		if !isDigits(p) {
			return Date{}, fmt.Errorf("%w: %q does not match format %s", ErrBadDate, text, order)
		}
		n, _ := strconv.Atoi(p)
		switch c {
		case 'D':
			d = n
		case 'M':
			m = n
		case 'Y', 'E':
			// A two-digit year is read in a 100-year window around 2000;
			// AIS sends four digits for E and may for Y.
			if len(p) <= 2 {
				n += 2000
				if n >= 2070 {
					n -= 100
				}
			}
			y = n
			c = 'Y'
		default:
			return Date{}, fmt.Errorf("%w: date format %q has unknown letter %q", ErrBadDate, order, c)
		}
		seen[c] = true
	}
	if len(seen) != 3 {
		return Date{}, fmt.Errorf("%w: date format %q must name day, month and year once each", ErrBadDate, order)
	}
	return civil(y, m, d, text)
}

func civil(y, m, d int, text string) (Date, error) {
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	if m < 1 || m > 12 || d < 1 || t.Day() != d || t.Month() != time.Month(m) {
		return Date{}, fmt.Errorf("%w: %q is not a calendar date", ErrBadDate, text)
	}
	return Date{Year: y, Month: time.Month(m), Day: d}, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
