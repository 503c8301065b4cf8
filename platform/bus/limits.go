package bus

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
)

// Bounds on what this package sends, checked before a message reaches the
// connection. NATS rejects a control line (which carries the subject) over
// max_control_line, 4,096 bytes by default, with an error on which nats.go
// closes the connection for good
// (https://docs.nats.io/running-a-nats-service/configuration#limits); a
// message over max_payload (1 MB by default, headers included) is refused.
// Our subjects and ids are short; these limits leave room and still keep
// any input far from the server's.
const (
	// MaxSubjectLen bounds a subject.
	MaxSubjectLen = 256
	// MaxIDLen bounds a Nats-Msg-Id.
	MaxIDLen = 256
	// MaxHeaderValueLen bounds each header value.
	MaxHeaderValueLen = 4096
)

// ErrInvalidMsg is wrapped by the error for a message this package refuses
// to send: a subject, id or header outside the bounds above, or a message
// larger than the server accepts.
var ErrInvalidMsg = errors.New("bus: message refused")

// CheckMsg reports why m cannot be published: its subject is not a
// sequence of non-empty tokens of printable ASCII without wildcards or
// white space, or is too long; its id or a header is too long or holds a
// control character; or, when maxPayload > 0, its data and headers exceed
// it.
func CheckMsg(m Msg, maxPayload int64) error {
	if err := checkSubject(m.Subject); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidMsg, err)
	}
	if len(m.ID) > MaxIDLen || !printable(m.ID) {
		return fmt.Errorf("%w: id of %d bytes is longer than %d or not printable ASCII", ErrInvalidMsg, len(m.ID), MaxIDLen)
	}
	size := int64(len(m.Data) + len(m.ID) + len(HeaderMsgID) + 4)
	for k, vs := range m.Header {
		if k == "" || len(k) > 128 || !printable(k) || strings.ContainsAny(k, ": ") {
			return fmt.Errorf("%w: header name %.40q", ErrInvalidMsg, k)
		}
		for _, v := range vs {
			if len(v) > MaxHeaderValueLen || !printable(v) && !printableUTF8(v) {
				return fmt.Errorf("%w: header %s: value of %d bytes too long or with control characters", ErrInvalidMsg, k, len(v))
			}
			size += int64(len(k) + len(v) + 4)
		}
	}
	if maxPayload > 0 && size > maxPayload {
		return fmt.Errorf("%w: %d bytes exceed the server's max payload of %d", ErrInvalidMsg, size, maxPayload)
	}
	return nil
}

func checkSubject(s string) error {
	if len(s) == 0 || len(s) > MaxSubjectLen {
		return fmt.Errorf("subject of %d bytes (want 1 to %d)", len(s), MaxSubjectLen)
	}
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" || tok == "*" || tok == ">" {
			return fmt.Errorf("subject %q has an empty or wildcard token", s)
		}
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("subject %q holds a character outside printable ASCII", s)
		}
	}
	return nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// printableUTF8 allows non-ASCII text (a reason quoting a name) but no
// control characters, which would break the header framing.
func printableUTF8(s string) bool {
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// maxReasonLen bounds a dead letter's reason header.
const maxReasonLen = 1024

// HeaderText makes s safe as a header value: control characters (a
// handler's multi-line error) become spaces, and it is cut to n bytes on a
// character boundary.
func HeaderText(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// Rejected is input refused at the edge, before it could become a message
// on its stream: an event too long for a subject, unreadable, or too large.
// It is kept as a dead letter (and so becomes an exception) with its raw
// bytes, rather than failing the batch it came in.
type Rejected struct {
	Stream string // the stream it was meant for
	Source string // who refused it, e.g. "gc-webhook"
	Reason string // why, without the refused value itself
	Data   []byte // the raw input
	Header nats.Header
}

// dlqReserve is room kept for a dead letter's headers under max payload.
const dlqReserve = 8 << 10

// RejectedMsg returns the dead letter for r, on the subject and with the
// headers MoveDeadLetters and the consume loop use, so the dead-letter
// consumer records it like any other. Its id is derived from the bytes, so
// the same input refused twice (GoCardless retrying) is stored once. Data
// that would not fit under maxPayload is cut to fit, and the headers say
// so with the original size and SHA-256.
func RejectedMsg(r Rejected, maxPayload int64) Msg {
	sum := sha256.Sum256(r.Data)
	id := "rejected:" + r.Source + ":" + hex.EncodeToString(sum[:16])
	hdr := nats.Header{}
	for k, v := range r.Header {
		hdr[k] = append([]string(nil), v...)
	}
	hdr.Set(HeaderDLQReason, HeaderText(r.Reason, maxReasonLen))
	hdr.Set(HeaderDLQStream, r.Stream)
	hdr.Set(HeaderDLQConsumer, r.Source)
	hdr.Set(HeaderDLQSequence, "0")
	hdr.Set(HeaderDLQDeliveries, "0")
	hdr.Set(HeaderDLQOriginalID, id)
	data := r.Data
	if limit := maxPayload - dlqReserve; maxPayload > 0 && int64(len(data)) > limit {
		data = data[:max(limit, 0)]
		hdr.Set(HeaderDLQTruncated, strconv.Itoa(len(r.Data))+" bytes, sha256 "+hex.EncodeToString(sum[:]))
	}
	return Msg{Subject: DeadLetterSubject(r.Stream, r.Source), ID: id, Data: data, Header: hdr}
}
