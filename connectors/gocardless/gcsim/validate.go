package gcsim

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Metadata limits GoCardless enforces on every resource.
const (
	maxMetadataKeys     = 3
	maxMetadataKeyLen   = 50
	maxMetadataValueLen = 500
)

// parseMetadata checks raw (absent, null or an object of strings) against
// GoCardless's limits and returns it. Problems are added to fe.
func parseMetadata(raw json.RawMessage, fe *fieldErrors) map[string]string {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		fe.add("metadata", "must be an object")
		return nil
	}
	if len(obj) > maxMetadataKeys {
		fe.add("metadata", fmt.Sprintf("must have at most %d keys", maxMetadataKeys))
	}
	out := make(map[string]string, len(obj))
	for _, k := range sortedKeys(obj) {
		ptr := pointer(fe.resource, "metadata") + "/" + jsonPointerEscape(k)
		if utf8.RuneCountInString(k) > maxMetadataKeyLen {
			fe.addAt("metadata", ptr, fmt.Sprintf("key %q is too long (maximum is %d characters)", k, maxMetadataKeyLen))
		}
		var v string
		if err := json.Unmarshal(obj[k], &v); err != nil {
			fe.addAt("metadata", ptr, fmt.Sprintf("value for key %q must be a string", k))
			continue
		}
		if utf8.RuneCountInString(v) > maxMetadataValueLen {
			fe.addAt("metadata", ptr, fmt.Sprintf("value for key %q is too long (maximum is %d characters)", k, maxMetadataValueLen))
		}
		out[k] = v
	}
	return out
}

func jsonPointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// parseAmount reads a required integer amount in minor units: a JSON
// number without fraction or exponent (a quoted number is refused, as
// money must not change type on the way).
func parseAmount(raw json.RawMessage, field string, fe *fieldErrors) (int64, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		fe.add(field, "is required")
		return 0, false
	}
	v, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		fe.add(field, "must be a whole number of minor currency units (e.g. pence or cents)")
		return 0, false
	}
	if v <= 0 {
		fe.add(field, "must be greater than 0")
		return 0, false
	}
	return v, true
}

// checkAmountLimits enforces a scheme's default amount limits.
func checkAmountLimits(amount int64, sc *scheme, field string, fe *fieldErrors) {
	switch {
	case amount < sc.minAmount:
		fe.add(field, fmt.Sprintf("must be at least %d (%s minor units) for %s", sc.minAmount, sc.currency, sc.name))
	case amount > sc.maxAmount:
		fe.add(field, fmt.Sprintf("must be at most %d (%s minor units) for %s", sc.maxAmount, sc.currency, sc.name))
	}
}

// checkReference enforces a scheme's payment reference length.
func checkReference(ref string, sc *scheme, field string, fe *fieldErrors) {
	if sc.maxReference > 0 && utf8.RuneCountInString(ref) > sc.maxReference {
		fe.add(field, fmt.Sprintf("is too long (maximum is %d characters for %s)", sc.maxReference, sc.name))
	}
}

// checkPaymentReference enforces, besides the length, who may set a
// payment reference at all (gocardless-pro-java PaymentService.java,
// reference): PAD "doesn't offer references"; a Bacs reference needs the
// GoCardless Plus, Pro or Enterprise package (SubscriptionService.java,
// payment_reference, says "your own Service User Number" instead: both
// are modelled by Creditor.CustomPaymentReferences). creditor may be nil
// when the mandate is unknown (that error is reported on its own).
func checkPaymentReference(ref string, sc *scheme, creditor *Creditor, field string, fe *fieldErrors) {
	if ref == "" {
		return
	}
	switch {
	case sc.name == "pad":
		fe.add(field, "cannot be set for pad payments (the scheme does not offer references)")
		return
	case sc.name == "bacs" && creditor != nil && !creditor.CustomPaymentReferences:
		fe.add(field, "can only be set for bacs payments on the GoCardless Plus, Pro or Enterprise packages")
		return
	}
	checkReference(ref, sc, field, fe)
}

func checkMaxLen(v string, n int, field string, fe *fieldErrors) {
	if utf8.RuneCountInString(v) > n {
		fe.add(field, fmt.Sprintf("is too long (maximum is %d characters)", n))
	}
}

func blank(p *string) bool { return p == nil || strings.TrimSpace(*p) == "" }

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// isoCountries are the ISO 3166-1 alpha-2 codes.
var isoCountries = func() map[string]bool {
	const all = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ " +
		"CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR " +
		"GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP " +
		"KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT " +
		"MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW " +
		"SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG " +
		"UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW"
	m := make(map[string]bool)
	for _, c := range strings.Fields(all) {
		m[c] = true
	}
	return m
}()

func validCountry(c string) bool { return isoCountries[c] }

func validEmail(e string) bool {
	local, domain, ok := strings.Cut(e, "@")
	return ok && local != "" && strings.Contains(domain, ".") && !strings.ContainsAny(e, " \t\r\n") &&
		!strings.Contains(domain, "@") && !strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".")
}

func validLanguage(l string) bool {
	return len(l) == 2 && l[0] >= 'a' && l[0] <= 'z' && l[1] >= 'a' && l[1] <= 'z'
}

func allDigits(s string) bool {
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

// normalizeDigits drops the spaces and dashes people type in account
// numbers and sort codes.
func normalizeDigits(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, s)
}

// ibanLengths are the IBAN lengths of the countries the simulator can take
// an IBAN for.
var ibanLengths = map[string]int{
	"AD": 24, "AT": 20, "BE": 16, "CY": 28, "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27,
	"GB": 22, "GR": 27, "HR": 21, "IE": 22, "IT": 27, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31,
	"NL": 18, "PT": 25, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "VA": 22,
}

// checkIBAN validates an IBAN's country, length and ISO 7064 mod-97 check
// digits, and returns it without spaces, upper-cased.
func checkIBAN(raw string) (string, error) {
	iban := strings.ToUpper(strings.ReplaceAll(raw, " ", ""))
	if len(iban) < 5 {
		return "", fmt.Errorf("is invalid")
	}
	want, ok := ibanLengths[iban[:2]]
	if !ok {
		return "", fmt.Errorf("is from a country the simulator does not support (%s)", iban[:2])
	}
	if len(iban) != want {
		return "", fmt.Errorf("must be %d characters for %s", want, iban[:2])
	}
	var digits strings.Builder
	for _, c := range iban[4:] + iban[:4] {
		switch {
		case c >= '0' && c <= '9':
			digits.WriteRune(c)
		case c >= 'A' && c <= 'Z':
			fmt.Fprintf(&digits, "%d", c-'A'+10)
		default:
			return "", fmt.Errorf("is invalid")
		}
	}
	n, ok := new(big.Int).SetString(digits.String(), 10)
	if !ok || new(big.Int).Mod(n, big.NewInt(97)).Int64() != 1 {
		return "", fmt.Errorf("has an invalid check digit")
	}
	return iban, nil
}
