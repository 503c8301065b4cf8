// Package erpmsg names the messages the ERP pollers put on JetStream: the
// subject mlc.erp.<ifs|jde>.<company>.<kind> and the Nats-Msg-Id
// <ifs|jde>:<connection>:<company>:<kind>:<key>:<version>, one id per
// version of an ERP record, so a record read twice (a poll overlap, a
// restarted poller) is stored once and a new version is never mistaken
// for an old one. The pollers, the orchestrator's intake and the test rigs
// all build and read them here, and every part is bounded before it
// reaches a subject or header.
package erpmsg

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/ml-connector/ml-connector/platform/bus"
)

// ERPs, the third subject token.
const (
	IFS = "ifs"
	JDE = "jde"
)

// Kinds, the last subject token.
const (
	KindCustomer = "customer"
	KindInvoice  = "invoice"
	KindRefund   = "refund"
)

// Prefix is the first two tokens of every ERP subject.
const Prefix = "mlc.erp."

// Bounds. A company is a subject token: IFS company ids are short codes
// ("10", "ACME"), JD Edwards companies five digits ("00001"). The
// connection follows the connection registry's names. Key and version
// are the ERP's own (an invoice id, an ETag, a JDE date and time) and
// bounded so that an id stays under bus.MaxIDLen.
const (
	MaxKeyLen     = 100
	MaxVersionLen = 100
)

var (
	companyPattern    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	connectionPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,63}$`)
)

// ErrInvalid is wrapped by every error of this package.
var ErrInvalid = errors.New("erp message name out of bounds")

func checkHead(erp, company, kind string) error {
	if erp != IFS && erp != JDE {
		return fmt.Errorf("%w: erp %.10q is not ifs or jde", ErrInvalid, erp)
	}
	if !companyPattern.MatchString(company) {
		return fmt.Errorf("%w: company of %d bytes is not 1 to 32 letters, digits, _ or -", ErrInvalid, len(company))
	}
	if kind != KindCustomer && kind != KindInvoice && kind != KindRefund {
		return fmt.Errorf("%w: kind %.10q is not customer, invoice or refund", ErrInvalid, kind)
	}
	return nil
}

// Subject is where events of an ERP's company and kind are published.
func Subject(erp, company, kind string) (string, error) {
	if err := checkHead(erp, company, kind); err != nil {
		return "", err
	}
	return Prefix + erp + "." + company + "." + kind, nil
}

// ID is the Nats-Msg-Id of one version of a record. It names the
// connection: two tenants may share company codes and keys, and JetStream
// would drop the second's record as a repeat of the first's.
func ID(erp, connection, company, kind, key, version string) (string, error) {
	if err := checkHead(erp, company, kind); err != nil {
		return "", err
	}
	if !connectionPattern.MatchString(connection) {
		return "", fmt.Errorf("%w: connection of %d bytes is not 1 to 63 letters, digits, ., _ or -", ErrInvalid, len(connection))
	}
	if err := text("key", key, MaxKeyLen); err != nil {
		return "", err
	}
	if err := text("version", version, MaxVersionLen); err != nil {
		return "", err
	}
	return RawID(erp, connection, company, kind, key, version), nil
}

// RawID is ID without its bounds: the key of a record refused before it
// became a message (a dedup key in Postgres), never a Nats-Msg-Id.
func RawID(erp, connection, company, kind, key, version string) string {
	return erp + ":" + connection + ":" + company + ":" + kind + ":" + key + ":" + version
}

// text checks an ERP-given part: present, at most max bytes, valid UTF-8
// without control characters (it becomes a header).
func text(what, s string, max int) error {
	if s == "" || len(s) > max || !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return fmt.Errorf("%w: %s of %d bytes is not 1 to %d bytes of text without control characters", ErrInvalid, what, len(s), max)
	}
	return nil
}

// Msg is the bus message carrying data, an encoded event of the kind.
func Msg(erp, connection, company, kind, key, version string, data []byte) (bus.Msg, error) {
	subject, err := Subject(erp, company, kind)
	if err != nil {
		return bus.Msg{}, err
	}
	id, err := ID(erp, connection, company, kind, key, version)
	if err != nil {
		return bus.Msg{}, err
	}
	return bus.Msg{Subject: subject, ID: id, Data: data}, nil
}

// Parse reads a subject of this package back into its ERP, company and
// kind; the orchestrator's intake dispatches on the kind.
func Parse(subject string) (erp, company, kind string, err error) {
	rest, ok := strings.CutPrefix(subject, Prefix)
	parts := strings.Split(rest, ".")
	if !ok || len(parts) != 3 {
		return "", "", "", fmt.Errorf("%w: subject is not %s<erp>.<company>.<kind>", ErrInvalid, Prefix)
	}
	if err := checkHead(parts[0], parts[1], parts[2]); err != nil {
		return "", "", "", err
	}
	return parts[0], parts[1], parts[2], nil
}
