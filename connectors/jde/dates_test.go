package jde

import (
	"errors"
	"testing"
	"time"
)

func TestParseJulian(t *testing.T) {
	tests := []struct {
		in   int
		want string
		bad  bool
	}{
		{in: 0, want: ""},
		{in: 126001, want: "2026-01-01"},
		{in: 126365, want: "2026-12-31"},
		{in: 99365, want: "1999-12-31"}, // last day before the century digit turns
		{in: 100001, want: "2000-01-01"},
		{in: 100060, want: "2000-02-29"}, // 2000 is a leap year (divisible by 400)
		{in: 124060, want: "2024-02-29"},
		{in: 124061, want: "2024-03-01"},
		{in: 124366, want: "2024-12-31"},
		{in: 125060, want: "2025-03-01"},
		{in: 200059, want: "2100-02-28"},
		{in: 200060, want: "2100-03-01"}, // 2100 is not a leap year
		{in: 200365, want: "2100-12-31"},
		{in: 200366, bad: true},
		{in: 125366, bad: true},
		{in: 126000, bad: true},
		{in: 126400, bad: true},
		{in: -1, bad: true},
		{in: 1000001, bad: true},
	}
	for _, tt := range tests {
		d, err := ParseJulian(tt.in)
		if tt.bad {
			if !errors.Is(err, ErrBadDate) {
				t.Errorf("ParseJulian(%d) = %v, %v; want ErrBadDate", tt.in, d, err)
			}
			continue
		}
		if err != nil || d.String() != tt.want {
			t.Errorf("ParseJulian(%d) = %q, %v; want %q", tt.in, d, err, tt.want)
		}
		if got := d.Julian(); got != tt.in {
			t.Errorf("ParseJulian(%d).Julian() = %d", tt.in, got)
		}
	}
}

// Every day from 1899-12-31 to 2101-01-01 survives Julian and back.
func TestJulianRoundTrip(t *testing.T) {
	for day := time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC); day.Year() < 2101; day = day.AddDate(0, 0, 1) {
		d := DateOf(day)
		back, err := ParseJulian(d.Julian())
		if err != nil || back != d {
			t.Fatalf("%s -> %d -> %v, %v", d, d.Julian(), back, err)
		}
	}
}

func TestParseDate(t *testing.T) {
	mde := DateFormat{Order: "MDE", Separator: "/"}
	tests := []struct {
		in   string
		f    DateFormat
		want string
		bad  bool
	}{
		{in: "", f: mde, want: ""},
		{in: "0", f: mde, want: ""},
		{in: "126031", f: mde, want: "2026-01-31"},
		{in: "99365", f: mde, want: "1999-12-31"},
		{in: "20260131", f: mde, want: "2026-01-31"},
		{in: "2026-01-31", f: mde, want: "2026-01-31"},
		{in: "01/31/2026", f: mde, want: "2026-01-31"},
		{in: "02/29/2024", f: mde, want: "2024-02-29"},
		{in: "31.01.2026", f: DateFormat{Order: "DME", Separator: "."}, want: "2026-01-31"},
		{in: "31/01/26", f: DateFormat{Order: "DMY", Separator: "/"}, want: "2026-01-31"},
		{in: "26-01-31", f: DateFormat{Order: "YMD", Separator: "-"}, want: "2026-01-31"},
		{in: "2026/01/31", f: DateFormat{Order: "YMD", Separator: "/"}, want: "2026-01-31"},
		{in: "2026-01-31", f: DateFormat{Order: "DME", Separator: "/"}, want: "2026-01-31"}, // ISO whatever the format
		{in: "2026/01/31", f: DateFormat{Order: "EMD", Separator: "/"}, want: "2026-01-31"},
		{in: "12/31/99", f: DateFormat{Order: "MDY", Separator: "/"}, want: "1999-12-31"},
		{in: "02/29/2100", f: mde, bad: true},
		{in: "02/30/2026", f: mde, bad: true},
		{in: "31/01/2026", f: mde, bad: true}, // month 31 in MDE
		{in: "01-31-2026", f: mde, bad: true}, // wrong separator
		{in: "2026-02-30", f: mde, bad: true},
		{in: "20261301", f: mde, bad: true},
		{in: "1234567", f: mde, bad: true},
		{in: "Jan 31 2026", f: mde, bad: true},
		{in: "01/31/2026", f: DateFormat{Order: "MDX", Separator: "/"}, bad: true},
		{in: "01/31/2026", f: DateFormat{Order: "MME", Separator: "/"}, bad: true},
	}
	for _, tt := range tests {
		d, err := ParseDate(tt.in, tt.f)
		if tt.bad {
			if !errors.Is(err, ErrBadDate) {
				t.Errorf("ParseDate(%q, %v) = %v, %v; want ErrBadDate", tt.in, tt.f, d, err)
			}
			continue
		}
		if err != nil || d.String() != tt.want {
			t.Errorf("ParseDate(%q, %v) = %q, %v; want %q", tt.in, tt.f, d, err, tt.want)
		}
	}
}

func TestParseTimeOfDay(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
		bad  bool
	}{
		{in: "", want: 0}, {in: "0", want: 0}, {in: "93015", want: 93015}, {in: "235959", want: 235959},
		{in: "240000", bad: true}, {in: "126000", bad: true}, {in: "100060", bad: true}, {in: "-1", bad: true}, {in: "1.5", bad: true},
	} {
		got, err := ParseTimeOfDay(tt.in)
		if tt.bad != (err != nil) || got != tt.want {
			t.Errorf("ParseTimeOfDay(%q) = %d, %v", tt.in, got, err)
		}
	}
}

func TestDateTime(t *testing.T) {
	d := Date{Year: 2026, Month: time.March, Day: 29}
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	got := d.Time(143015, loc)
	if want := time.Date(2026, 3, 29, 13, 30, 15, 0, time.UTC); !got.Equal(want) {
		t.Errorf("Time = %v, want %v (BST)", got, want)
	}
}
