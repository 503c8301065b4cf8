package poller

import (
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/jde"
)

// A pay item's version is what poll_seen holds of it: were the digest to
// change (another hash, another column order or separator), the first
// cycle after an upgrade would publish every pay item of the overlap
// window again, under a version that names no change. The value is the
// one pay items carried before customers shared the digest (#17).
func TestPayItemVersionIsStable(t *testing.T) {
	row := jde.Row{"F03B11_DOC": "1001", "F03B11_DCT": "RI", "F03B11_KCO": "00001", "F03B11_SFX": "001",
		"F03B11_AN8": "4001", "F03B11_AAP": "100.00", "F03B11_CRCD": "GBP"}
	d := document{row: row, stamp: stamp{date: jde.DateOf(time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC)), time: 90130}}
	if v, want := d.version(), "126031090130-5f654516f98e2e41"; v != want {
		t.Fatalf("pay item version %s, want %s", v, want)
	}
}
