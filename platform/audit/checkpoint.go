package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
)

// A Checkpoint vouches, under the audit keys, for every chain's head at
// one moment, to be kept outside Postgres (platform/audit/auditkv):
// verified with it, a chain cut short or deleted whole (rows and head) is
// detected, which no content of the database can prove once the database
// is the one rewritten.
//
// Version 2 (what [WriteCheckpoint] makes) is a small signed manifest; the
// heads themselves are a stream of any length, kept apart (a JetStream
// object) and bound to the manifest by their count and SHA-256. Version 1
// (Version 0 in JSON: absent) had the heads inline, which no store
// accepts beyond a few thousand chains; it is still read, so a system
// upgraded from it verifies against its last version 1 checkpoint.
type Checkpoint struct {
	Version int       `json:"version,omitempty"`
	TakenAt time.Time `json:"taken_at"`

	// Version 1: the heads.
	Heads []Head `json:"heads,omitempty"`

	// Version 2: how many heads, the SHA-256 of their stream and the name
	// of the object holding it.
	HeadCount   int64  `json:"head_count,omitempty"`
	HeadsSHA256 []byte `json:"heads_sha256,omitempty"`
	Object      string `json:"object,omitempty"`

	KeyID string `json:"key_id"`
	MAC   []byte `json:"mac"`

	// OpenHeads opens a version 2 checkpoint's heads stream (the object
	// Object); the store that read the manifest sets it.
	OpenHeads func(ctx context.Context) (io.ReadCloser, error) `json:"-"`
}

// Head is one chain's newest row as a checkpoint saw it.
type Head struct {
	AggregateType string `json:"aggregate_type"`
	AggregateID   string `json:"aggregate_id"`
	Seq           int64  `json:"seq"`
	Hash          []byte `json:"hash"`
}

const (
	checkpointDomain   = "mlc-audit-checkpoint-v1"
	checkpointV2Domain = "mlc-audit-checkpoint-v2"

	// maxHeadField bounds an aggregate type or id in a heads stream, so
	// that reading a tampered stream cannot take unbounded memory before
	// its digest is found wrong.
	maxHeadField = 4096
	// headsPage is how many heads are read from Postgres, and looked up
	// again when verifying, at a time: the memory a checkpoint takes.
	headsPage = 1000
)

// Chains is the number of chains the checkpoint vouches for.
func (c *Checkpoint) Chains() int64 {
	if c.Version >= 2 {
		return c.HeadCount
	}
	return int64(len(c.Heads))
}

// WriteCheckpoint writes every chain's head to w as a version 2 heads
// stream and returns the manifest, signed with keys, that vouches for it
// as the object named object. The heads are read a page at a time (no
// connection is held while w is written), so memory does not grow with
// the number of chains; each head is the chain's head at some moment
// after TakenAt, which is all a checkpoint claims (chains only grow).
func WriteCheckpoint(ctx context.Context, q Querier, keys *Keys, object string, w io.Writer) (Checkpoint, error) {
	if keys == nil {
		return Checkpoint{}, errors.New("audit: checkpoint: no keys to sign it with")
	}
	c := Checkpoint{Version: 2, TakenAt: time.Now().UTC().Truncate(time.Microsecond), Object: object}
	digest := sha256.New()
	var (
		buf              []byte
		afterT, afterID  string
		lastT, lastID    []byte
		first            = true
		hashBuf          [32]byte
		seqBuf           [8]byte
		sqlFirst, sqlNxt = `SELECT aggregate_type, aggregate_id, seq::text, encode(hash, 'hex') FROM audit_heads
			WHERE seq > 0 ORDER BY aggregate_type, aggregate_id LIMIT $1`, `SELECT aggregate_type, aggregate_id, seq::text, encode(hash, 'hex') FROM audit_heads
			WHERE seq > 0 AND (aggregate_type, aggregate_id) > ($2, $3) ORDER BY aggregate_type, aggregate_id LIMIT $1`
	)
	for {
		var n int
		buf = buf[:0]
		err := func() error {
			// Every column as text, so the raw values read the same in
			// any protocol mode, and copied into buf without a per-row
			// allocation.
			sql, args := sqlNxt, []any{headsPage, afterT, afterID}
			if first {
				sql, args = sqlFirst, []any{headsPage}
			}
			rows, err := q.Query(ctx, sql, args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				v := rows.RawValues()
				if len(v[0]) > maxHeadField || len(v[1]) > maxHeadField {
					return fmt.Errorf("chain %.64s %.64s: aggregate type or id longer than %d bytes", v[0], v[1], maxHeadField)
				}
				seq, err := parseSeq(v[2])
				if err != nil {
					return err
				}
				if len(v[3]) != 64 {
					return fmt.Errorf("chain %s %s: head hash is not 32 bytes", v[0], v[1])
				}
				if _, err := hex.Decode(hashBuf[:], v[3]); err != nil {
					return fmt.Errorf("chain %s %s: head hash %q is not 32 bytes", v[0], v[1], v[3])
				}
				buf = appendField(buf, v[0])
				buf = appendField(buf, v[1])
				buf = appendField(buf, binary.BigEndian.AppendUint64(seqBuf[:0], uint64(seq)))
				buf = appendField(buf, hashBuf[:])
				// Copied: raw values are only valid until the next row.
				lastT, lastID = append(lastT[:0], v[0]...), append(lastID[:0], v[1]...)
				n++
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if n > 0 {
				afterT, afterID = string(lastT), string(lastID)
			}
			return nil
		}()
		if err != nil {
			return Checkpoint{}, fmt.Errorf("audit: checkpoint: %w", err)
		}
		first = false
		digest.Write(buf)
		if _, err := w.Write(buf); err != nil {
			return Checkpoint{}, fmt.Errorf("audit: checkpoint: writing the heads: %w", err)
		}
		c.HeadCount += int64(n)
		if n < headsPage {
			break
		}
	}
	c.HeadsSHA256 = digest.Sum(nil)
	c.KeyID, c.MAC = keys.sign(checkpointV2Domain, c.message())
	return c, nil
}

// parseSeq parses a decimal seq without allocating.
func parseSeq(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > 18 {
		return 0, fmt.Errorf("head seq %q out of range", b)
	}
	var n int64
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, fmt.Errorf("head seq %q is not a number", b)
		}
		n = n*10 + int64(d-'0')
	}
	return n, nil
}

// appendField appends f as the checkpoint and row hash write every field:
// its length (8 bytes, big-endian), then its bytes.
func appendField(b, f []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(f)))
	return append(b, f...)
}

// message is the signed content. Version 1: the time and every head;
// version 2: the time, the heads' count and digest, and the object's
// name. Each field is length-prefixed as in the row hash.
func (c *Checkpoint) message() []byte {
	var b []byte
	b = appendField(b, []byte(c.TakenAt.UTC().Format(time.RFC3339Nano)))
	if c.Version >= 2 {
		b = appendField(b, binary.BigEndian.AppendUint64(nil, uint64(c.HeadCount)))
		b = appendField(b, c.HeadsSHA256)
		return appendField(b, []byte(c.Object))
	}
	for _, h := range c.Heads {
		b = appendHead(b, h)
	}
	return b
}

func appendHead(b []byte, h Head) []byte {
	b = appendField(b, []byte(h.AggregateType))
	b = appendField(b, []byte(h.AggregateID))
	b = appendField(b, binary.BigEndian.AppendUint64(nil, uint64(h.Seq)))
	return appendField(b, h.Hash)
}

// ErrCheckpointForged is returned for a checkpoint whose signature does
// not verify: it cannot vouch for anything.
var ErrCheckpointForged = errors.New("audit: checkpoint signature does not verify")

// ErrCheckpointHeads is returned when a version 2 checkpoint's heads
// stream is not the one its signed manifest vouches for (tampered with,
// truncated or replaced), or cannot be read: the log is then not
// verified against it.
var ErrCheckpointHeads = errors.New("audit: checkpoint heads missing or not the ones their manifest signed")

func (c *Checkpoint) verify(keys *Keys) error {
	domain := checkpointDomain
	switch c.Version {
	case 0:
	case 2:
		domain = checkpointV2Domain
	default:
		return fmt.Errorf("%w: unknown checkpoint version %d", ErrCheckpointForged, c.Version)
	}
	ok, known := keys.check(c.KeyID, domain, c.message(), c.MAC)
	if !known {
		return fmt.Errorf("%w: signed with unknown key %q", ErrCheckpointForged, c.KeyID)
	}
	if !ok {
		return ErrCheckpointForged
	}
	return nil
}

// checkAgainst looks up, a page at a time, every head the (verified)
// checkpoint vouches for: each must still be in audit_log as it was. It
// returns the chains found behind the checkpoint and how many of them
// are gone altogether (not counted by the chain scan).
func (c *Checkpoint) checkAgainst(ctx context.Context, q Querier) (broken []*ChainError, gone int, err error) {
	next, finish, err := c.headsReader(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer finish(false)
	page := make([]Head, 0, headsPage)
	lookup := func() error {
		if len(page) == 0 {
			return nil
		}
		types, ids, seqs := make([]string, len(page)), make([]string, len(page)), make([]int64, len(page))
		for i, h := range page {
			types[i], ids[i], seqs[i] = h.AggregateType, h.AggregateID, h.Seq
		}
		rows, err := q.Query(ctx, `
			SELECT l.hash, l.hash IS NOT NULL
			       OR EXISTS (SELECT 1 FROM audit_heads h WHERE h.aggregate_type = b.t AND h.aggregate_id = b.i)
			       OR EXISTS (SELECT 1 FROM audit_log x WHERE x.aggregate_type = b.t AND x.aggregate_id = b.i)
			FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS b(t, i, seq, n)
			LEFT JOIN audit_log l ON l.aggregate_type = b.t AND l.aggregate_id = b.i AND l.seq = b.seq
			ORDER BY b.n`, types, ids, seqs)
		if err != nil {
			return fmt.Errorf("audit: verify: checkpoint: %w", err)
		}
		defer rows.Close()
		i := 0
		for ; rows.Next(); i++ {
			var (
				hash   []byte
				exists bool
			)
			if err := rows.Scan(&hash, &exists); err != nil {
				return fmt.Errorf("audit: verify: checkpoint: %w", err)
			}
			if h := page[i]; !bytes.Equal(hash, h.Hash) {
				broken = append(broken, &ChainError{AggregateType: h.AggregateType, AggregateID: h.AggregateID,
					Seq: h.Seq, Problem: ProblemBehindCheckpoint})
				if !exists {
					gone++
				}
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("audit: verify: checkpoint: %w", err)
		}
		if i != len(page) {
			return fmt.Errorf("audit: verify: checkpoint: %d heads looked up, %d answers", len(page), i)
		}
		page = page[:0]
		return nil
	}
	for {
		h, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, err
		}
		if page = append(page, h); len(page) == headsPage {
			if err := lookup(); err != nil {
				return nil, 0, err
			}
		}
	}
	if err := lookup(); err != nil {
		return nil, 0, err
	}
	// Only now is a version 2 stream known to be the one signed; until
	// then what it said is not reported.
	if err := finish(true); err != nil {
		return nil, 0, err
	}
	return broken, gone, nil
}

// headsReader returns the checkpoint's heads one by one (io.EOF at the
// end) and a finish function that, when complete is true, checks that the
// whole stream was the one signed (and in any case releases it).
func (c *Checkpoint) headsReader(ctx context.Context) (next func() (Head, error), finish func(complete bool) error, err error) {
	if c.Version < 2 {
		i := 0
		return func() (Head, error) {
			if i == len(c.Heads) {
				return Head{}, io.EOF
			}
			i++
			return c.Heads[i-1], nil
		}, func(bool) error { return nil }, nil
	}
	if c.OpenHeads == nil {
		return nil, nil, fmt.Errorf("%w: nowhere to read object %q from", ErrCheckpointHeads, c.Object)
	}
	rc, err := c.OpenHeads(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: object %q: %w", ErrCheckpointHeads, c.Object, err)
	}
	d := &headsDecoder{r: bufio.NewReaderSize(rc, 64<<10), digest: sha256.New()}
	closed := false
	finish = func(complete bool) error {
		if !closed {
			closed = true
			rc.Close()
		}
		if !complete {
			return nil
		}
		if d.count != c.HeadCount {
			return fmt.Errorf("%w: object %q holds %d heads, the manifest %d", ErrCheckpointHeads, c.Object, d.count, c.HeadCount)
		}
		if sum := d.digest.Sum(nil); !bytes.Equal(sum, c.HeadsSHA256) {
			return fmt.Errorf("%w: object %q has SHA-256 %x, the manifest %x", ErrCheckpointHeads, c.Object, sum, c.HeadsSHA256)
		}
		return nil
	}
	return func() (Head, error) {
		h, err := d.next()
		if err != nil && err != io.EOF {
			err = fmt.Errorf("%w: object %q: %w", ErrCheckpointHeads, c.Object, err)
		}
		return h, err
	}, finish, nil
}

// headsDecoder reads a version 2 heads stream, hashing what it reads.
type headsDecoder struct {
	r      *bufio.Reader
	digest hash.Hash
	count  int64
}

func (d *headsDecoder) next() (Head, error) {
	typ, err := d.field(maxHeadField)
	if err == io.EOF {
		return Head{}, io.EOF
	}
	var id, seq, hash []byte
	if err == nil {
		id, err = d.field(maxHeadField)
	}
	if err == nil {
		seq, err = d.field(8)
	}
	if err == nil {
		hash, err = d.field(32)
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err == nil && (len(seq) != 8 || len(hash) != 32) {
		err = errors.New("malformed head")
	}
	if err != nil {
		return Head{}, fmt.Errorf("head %d: %w", d.count+1, err)
	}
	d.count++
	return Head{AggregateType: string(typ), AggregateID: string(id), Seq: int64(binary.BigEndian.Uint64(seq)), Hash: hash}, nil
}

// field reads one length-prefixed field of at most limit bytes.
func (d *headsDecoder) field(limit int) ([]byte, error) {
	var n [8]byte
	if _, err := io.ReadFull(d.r, n[:]); err != nil {
		return nil, err // io.EOF only where no field starts
	}
	size := binary.BigEndian.Uint64(n[:])
	if size > uint64(limit) {
		return nil, fmt.Errorf("field of %d bytes, at most %d expected", size, limit)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(d.r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	d.digest.Write(n[:])
	d.digest.Write(b)
	return b, nil
}
