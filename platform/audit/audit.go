// Package audit is ml-connector's tamper-evident audit trail: every state
// change of a collection, mandate, refund, connection or exception is
// recorded in the PostgreSQL table audit_log, in the same transaction as
// the change itself.
//
// The log is append-only twice over. The database refuses UPDATE, DELETE
// and TRUNCATE on audit_log (triggers installed by the schema migration),
// and each row is hash-chained to the previous row of the same aggregate,
// so that changes made by someone able to bypass the triggers (the table
// owner, a superuser, a restored backup) are detected by [Verify] and
// [VerifyAll]. The table audit_heads holds the newest link of every chain;
// it makes deletion of the newest rows detectable, and locking it
// serializes concurrent appends to one aggregate.
//
// # Hash
//
// The hash of a row is SHA-256 over the concatenation of these fields, each
// written as its length in bytes (8-byte big-endian unsigned) followed by
// its bytes:
//
//  1. the constant "mlc-audit-v1"
//  2. aggregate_type (UTF-8)
//  3. aggregate_id (UTF-8)
//  4. seq, as 8 bytes big-endian
//  5. occurred_at in UTC, truncated to microseconds (PostgreSQL's
//     precision), formatted as RFC 3339 with up to 9 fractional digits and
//     no trailing zeros (Go's time.RFC3339Nano), e.g. 2026-01-02T03:04:05.123456Z
//  6. actor (UTF-8)
//  7. action (UTF-8)
//  8. payload, the exact JSON text stored in the json column
//  9. prev_hash: the hash of the previous row of the aggregate, or 32 zero
//     bytes for seq 1
//
// The chain alone proves that history was not rewritten by someone who
// could not also recompute the hashes. Against someone who can write the
// tables (the owner, a superuser, a restored backup), two keyed defences:
//
//   - Each row's MAC: HMAC-SHA256 of its hash under an audit key the
//     database never holds ([Keys], derived from the master keyring, so it
//     rotates with it: rows signed under a previous master key still
//     verify). Services sign every row ([SignWith], at start-up); a chain
//     rewritten with recomputed hashes fails [VerifyAllWith] with
//     ProblemBadMAC, naming the row.
//   - Signed checkpoints of every chain's head ([WriteCheckpoint]), kept
//     outside Postgres (platform/audit/auditkv): verified against one, a
//     chain cut short, or deleted whole with its head, is reported
//     (ProblemBehindCheckpoint), which nothing left in the database could
//     show.
//
// # Checkpoint
//
// A checkpoint (version 2) is a heads stream and a signed manifest. The
// heads stream is every chain's head (audit_heads rows with seq > 0), one
// after the other, each written as four fields, each field its length in
// bytes (8-byte big-endian unsigned) followed by its bytes:
// aggregate_type, aggregate_id (each at most 4096 bytes), seq (8 bytes
// big-endian) and hash (32 bytes). It has no size limit and is written
// and read a page of 1,000 heads at a time, so neither taking nor
// verifying a checkpoint holds every head in memory; its order carries no
// meaning. The manifest is JSON:
//
//	{"version":2, "taken_at":"…", "head_count":N, "heads_sha256":"<base64>",
//	 "object":"<where the stream is>", "key_id":"…", "mac":"<base64>"}
//
// and mac is HMAC-SHA256, under the audit key key_id, of
// "mlc-audit-checkpoint-v2", a zero byte, then taken_at (RFC 3339 as
// above), head_count (8 bytes big-endian), heads_sha256 (the SHA-256 of
// the whole stream) and object, each as a length-prefixed field. Verifying
// checks the mac, then looks every head up in audit_log (the row of that
// seq must be there with that hash), and reports nothing from a stream
// whose count or SHA-256 differs from the manifest's ([ErrCheckpointHeads]).
// Each head was its chain's head at some moment after taken_at: chains
// only grow, so the heads need not be read in one snapshot.
//
// Version 1 (no "version" field) had the heads inline, as "heads":
// [{"aggregate_type", "aggregate_id", "seq", "hash"}, …], and its mac over
// "mlc-audit-checkpoint-v1", a zero byte, taken_at and every head's four
// fields; past about 8,000 chains NATS refused to store it. It is still
// verified against, so a system upgraded from it keeps its reference.
//
// Grant the application role only INSERT and SELECT on audit_log (and the
// access Append needs on audit_heads) and keep ownership elsewhere all the
// same.
package audit

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier runs SQL. pgx.Tx, *pgxpool.Pool, *pgxpool.Conn and *pgx.Conn
// satisfy it.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// An Entry is what happened, as given to [Append].
type Entry struct {
	AggregateType string // e.g. "collection", "mandate", "connection"
	AggregateID   string
	Actor         string // who caused it: a service name, or an operator
	Action        string // e.g. "payment.created", "exception.replayed"
	// Payload is marshalled with encoding/json; the resulting text is stored
	// and hashed verbatim.
	Payload any
	// OccurredAt defaults to the current time. It is truncated to
	// microseconds, the precision PostgreSQL keeps.
	OccurredAt time.Time
}

// A Record is a stored audit_log row.
type Record struct {
	ID            int64           `json:"id"`
	AggregateType string          `json:"aggregate_type"`
	AggregateID   string          `json:"aggregate_id"`
	Seq           int64           `json:"seq"` // 1, 2, 3, … within the aggregate
	OccurredAt    time.Time       `json:"occurred_at"`
	Actor         string          `json:"actor"`
	Action        string          `json:"action"`
	Payload       json.RawMessage `json:"payload"`
	PrevHash      []byte          `json:"prev_hash"`
	Hash          []byte          `json:"hash"`
	// MACKeyID and MAC sign Hash under an audit key (see [Keys]); empty
	// for rows written without one.
	MACKeyID string `json:"mac_key_id,omitempty"`
	MAC      []byte `json:"mac,omitempty"`
}

const (
	hashDomain = "mlc-audit-v1"
	hashSize   = sha256.Size
)

var zeroHash = make([]byte, hashSize)

// Append records e as the next entry of its aggregate's chain and returns
// the stored record.
//
// Called with a pgx.Tx, Append takes part in that transaction, which is the
// intended use: the entry then exists if and only if the change it records
// was committed. The caller must return Append's error so that the
// transaction is not committed without its audit entry. Called with
// anything else that can begin a transaction (a pool, a connection), Append
// commits the entry in a transaction of its own.
//
// Appends to one aggregate are serialized by a row lock on its head, held
// until the transaction ends. Under REPEATABLE READ or SERIALIZABLE
// isolation a concurrent append to the same aggregate makes Append fail
// with a serialization error (SQLSTATE 40001); retry the transaction.
func Append(ctx context.Context, q Querier, e Entry) (Record, error) {
	var recs []Record
	var err error
	switch q := q.(type) {
	case pgx.Tx:
		recs, err = AppendAll(ctx, q, []Entry{e})
	case interface {
		Begin(context.Context) (pgx.Tx, error)
	}:
		err = pgx.BeginFunc(ctx, q, func(tx pgx.Tx) error {
			recs, err = AppendAll(ctx, tx, []Entry{e})
			return err
		})
	default:
		// Without a transaction the head lock would be released at once
		// and a failure between the two writes would break the chain.
		err = fmt.Errorf("audit: append %s %s: %T can neither begin a transaction nor is one", e.AggregateType, e.AggregateID, q)
	}
	if err != nil {
		return Record{}, err
	}
	return recs[0], nil
}

// AppendAll records entries in tx, in the round trips of a single
// [Append] however many there are: entries of one aggregate are chained in
// the order given, and heads are locked in the order of their aggregate
// (type, then id), so that two transactions appending to overlapping sets
// of aggregates queue behind each other instead of deadlocking.
func AppendAll(ctx context.Context, tx pgx.Tx, entries []Entry) ([]Record, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	recs := make([]Record, len(entries))
	now := time.Now()
	for i, e := range entries {
		if err := e.validate(); err != nil {
			return nil, err
		}
		payload, err := json.Marshal(e.Payload)
		if err != nil {
			return nil, fmt.Errorf("audit: append %s %s: marshal payload: %w", e.AggregateType, e.AggregateID, err)
		}
		occurred := e.OccurredAt
		if occurred.IsZero() {
			occurred = now
		}
		recs[i] = Record{
			AggregateType: e.AggregateType,
			AggregateID:   e.AggregateID,
			// Truncated before hashing, so the hash covers exactly what the
			// timestamptz column will hold.
			OccurredAt: occurred.Truncate(time.Microsecond).UTC(),
			Actor:      e.Actor,
			Action:     e.Action,
			Payload:    payload,
		}
	}
	if err := appendTx(ctx, tx, recs); err != nil {
		if len(recs) == 1 {
			return nil, fmt.Errorf("audit: append %s %s: %w", recs[0].AggregateType, recs[0].AggregateID, err)
		}
		return nil, fmt.Errorf("audit: append %d entries: %w", len(recs), err)
	}
	return recs, nil
}

func (e Entry) validate() error {
	for _, f := range []struct{ name, v string }{
		{"aggregate type", e.AggregateType},
		{"aggregate id", e.AggregateID},
		{"actor", e.Actor},
		{"action", e.Action},
	} {
		if f.v == "" {
			return fmt.Errorf("audit: append: empty %s", f.name)
		}
	}
	return nil
}

// head is the newest link of a chain.
type head struct {
	seq  int64
	hash []byte
}

func appendTx(ctx context.Context, tx pgx.Tx, recs []Record) error {
	// Two round trips however many entries: each phase is sent as one
	// pipelined batch. Audit entries are written with every state change,
	// so this is on the hot path of collecting an invoice.
	var aggs []aggregateKey
	for _, r := range recs {
		aggs = append(aggs, aggregateKey{r.AggregateType, r.AggregateID})
	}
	slices.SortFunc(aggs, func(a, b aggregateKey) int {
		return cmp.Or(strings.Compare(a.typ, b.typ), strings.Compare(a.id, b.id))
	})
	aggs = slices.Compact(aggs)

	// The head row must exist before it can be locked; ON CONFLICT waits
	// for a concurrent first append to finish instead of failing.
	heads := make(map[aggregateKey]*head, len(aggs))
	lock := &pgx.Batch{}
	for _, a := range aggs {
		h := &head{}
		heads[a] = h
		lock.Queue(`
			INSERT INTO audit_heads (aggregate_type, aggregate_id, seq, hash)
			VALUES ($1, $2, 0, $3)
			ON CONFLICT (aggregate_type, aggregate_id) DO NOTHING`,
			a.typ, a.id, zeroHash)
		lock.Queue(`
			SELECT seq, hash FROM audit_heads
			WHERE aggregate_type = $1 AND aggregate_id = $2
			FOR UPDATE`,
			a.typ, a.id).QueryRow(func(row pgx.Row) error {
			return row.Scan(&h.seq, &h.hash)
		})
	}
	if err := tx.SendBatch(ctx, lock).Close(); err != nil {
		return fmt.Errorf("lock head: %w", err)
	}

	stored := make([]string, len(recs))
	write := &pgx.Batch{}
	keys := signing.Load()
	for i := range recs {
		rec := &recs[i]
		h := heads[aggregateKey{rec.AggregateType, rec.AggregateID}]
		rec.Seq, rec.PrevHash = h.seq+1, h.hash
		rec.Hash = chainHash(rec)
		h.seq, h.hash = rec.Seq, rec.Hash
		var keyID *string
		if keys != nil {
			var id string
			id, rec.MAC = keys.sign(rowMACDomain, rec.Hash)
			rec.MACKeyID, keyID = id, &id
		}
		write.Queue(`
			INSERT INTO audit_log
				(aggregate_type, aggregate_id, seq, occurred_at, actor, action, payload, prev_hash, hash, mac_key_id, mac)
			VALUES ($1, $2, $3, $4, $5, $6, $7::text::json, $8, $9, $10, $11)
			RETURNING id, payload::text`,
			rec.AggregateType, rec.AggregateID, rec.Seq, rec.OccurredAt, rec.Actor, rec.Action,
			string(rec.Payload), rec.PrevHash, rec.Hash, keyID, rec.MAC).QueryRow(func(row pgx.Row) error {
			return row.Scan(&rec.ID, &stored[i])
		})
		// The head advances one entry at a time: its trigger refuses
		// jumps, so that it always vouches for the row it points at.
		write.Queue(`
			UPDATE audit_heads SET seq = $3, hash = $4
			WHERE aggregate_type = $1 AND aggregate_id = $2`,
			rec.AggregateType, rec.AggregateID, rec.Seq, rec.Hash)
	}
	if err := tx.SendBatch(ctx, write).Close(); err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	// A server that rewrote the payload (an encoding conversion, say) would
	// store a row that can never verify; refuse it now rather than raise a
	// false tampering alarm later. (The head just advanced with it, but
	// the error rolls the whole transaction back.)
	for i, rec := range recs {
		if stored[i] != string(rec.Payload) {
			return errors.New("insert: database did not store the payload text verbatim")
		}
	}
	return nil
}

// chainHash computes the hash of r as documented in the package comment.
func chainHash(r *Record) []byte {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], uint64(r.Seq))

	field([]byte(hashDomain))
	field([]byte(r.AggregateType))
	field([]byte(r.AggregateID))
	field(seq[:])
	field([]byte(r.OccurredAt.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)))
	field([]byte(r.Actor))
	field([]byte(r.Action))
	field(r.Payload)
	field(r.PrevHash)
	return h.Sum(nil)
}

// List returns the audit records of one aggregate, oldest first.
func List(ctx context.Context, q Querier, aggregateType, aggregateID string) ([]Record, error) {
	rows, err := q.Query(ctx, `
		SELECT id, aggregate_type, aggregate_id, seq, occurred_at, actor, action, payload::text, prev_hash, hash
		FROM audit_log
		WHERE aggregate_type = $1 AND aggregate_id = $2
		ORDER BY seq`,
		aggregateType, aggregateID)
	if err != nil {
		return nil, fmt.Errorf("audit: list %s %s: %w", aggregateType, aggregateID, err)
	}
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Record, error) {
		var r Record
		var payload string
		err := row.Scan(&r.ID, &r.AggregateType, &r.AggregateID, &r.Seq, &r.OccurredAt,
			&r.Actor, &r.Action, &payload, &r.PrevHash, &r.Hash)
		r.OccurredAt = r.OccurredAt.UTC()
		r.Payload = json.RawMessage(payload)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("audit: list %s %s: %w", aggregateType, aggregateID, err)
	}
	return recs, nil
}

// A Problem is a way in which a chain fails verification.
type Problem string

const (
	// ProblemModified: the row's content no longer matches its hash.
	ProblemModified Problem = "row modified: hash mismatch"
	// ProblemBrokenLink: the row's prev_hash is not the hash of the row
	// before it, so a row was replaced, reordered or removed.
	ProblemBrokenLink Problem = "broken link: prev_hash mismatch"
	// ProblemMissing: there is no row with this seq though later rows exist.
	ProblemMissing Problem = "row missing: seq gap"
	// ProblemHeadMismatch: the chain does not end where its head says, so
	// the newest rows were removed or rows were added without Append.
	ProblemHeadMismatch Problem = "chain does not end at its head"
	// ProblemHeadMissing: rows exist but their head does not.
	ProblemHeadMissing Problem = "head missing"
	// ProblemUnsigned: verified with keys, the row carries no MAC.
	ProblemUnsigned Problem = "row not signed"
	// ProblemBadMAC: the row's MAC does not verify: it was written or
	// rewritten by someone without the audit key.
	ProblemBadMAC Problem = "MAC does not verify"
	// ProblemUnknownKey: the row is signed with a key the verifier lacks.
	ProblemUnknownKey Problem = "signed with an unknown key"
	// ProblemBehindCheckpoint: a signed checkpoint vouches for a row of
	// the chain that is no longer there as it was: the chain was cut,
	// rewritten or deleted whole.
	ProblemBehindCheckpoint Problem = "chain does not contain the row its checkpoint vouches for"
)

// A ChainError reports the first problem found in the chain of one
// aggregate. Seq is the sequence number at which the chain stops being
// trustworthy: the modified or missing row, or the row whose link to its
// predecessor is broken.
type ChainError struct {
	AggregateType string
	AggregateID   string
	Seq           int64
	// RowID is the audit_log id of the row found wrong (0 when the row is
	// missing).
	RowID   int64
	Problem Problem
}

func (e *ChainError) Error() string {
	row := ""
	if e.RowID != 0 {
		row = fmt.Sprintf(" (audit_log id %d)", e.RowID)
	}
	return fmt.Sprintf("audit: chain %s %s broken at seq %d%s: %s", e.AggregateType, e.AggregateID, e.Seq, row, e.Problem)
}

// A Report summarizes [VerifyAll].
type Report struct {
	Chains  int   // aggregates checked
	Records int64 // rows checked
	Broken  []*ChainError
}

// Verify recomputes the chain of one aggregate. It returns a *ChainError
// describing the first problem found, another error if the chain could not
// be read, or nil if the chain is intact (or there is no chain).
func Verify(ctx context.Context, q Querier, aggregateType, aggregateID string) error {
	// Keyed with the keys this process signs with, if any, but lenient
	// about unsigned rows (written before keys were set): VerifyAllWith
	// is the strict check.
	rep, err := verify(ctx, q, &aggregateKey{aggregateType, aggregateID}, VerifyOptions{Keys: signing.Load(), allowUnsigned: true})
	if err != nil {
		return err
	}
	if len(rep.Broken) > 0 {
		return rep.Broken[0]
	}
	return nil
}

// VerifyChain is [VerifyAllWith] for the chain of one aggregate: with
// o.Keys every row must carry a MAC that verifies under them, as mlcctl
// audit verify requires, so a chain rewritten with recomputed hashes and
// its MACs dropped is reported (which [Verify] lets pass). It returns a
// *ChainError describing the first problem, another error if the chain
// could not be read, or nil.
func VerifyChain(ctx context.Context, q Querier, aggregateType, aggregateID string, o VerifyOptions) error {
	if o.Checkpoint != nil {
		return errors.New("audit: verify chain: checkpoints are checked over the whole log (VerifyAllWith)")
	}
	rep, err := verify(ctx, q, &aggregateKey{aggregateType, aggregateID}, o)
	if err != nil {
		return err
	}
	if len(rep.Broken) > 0 {
		return rep.Broken[0]
	}
	return nil
}

// VerifyAll recomputes every chain in the audit log. The returned error is
// non-nil if any chain is broken (it then wraps every *ChainError of
// Report.Broken, for errors.As) or if the log could not be read, so a
// caller that only checks the error cannot miss tampering.
func VerifyAll(ctx context.Context, q Querier) (Report, error) {
	return VerifyAllWith(ctx, q, VerifyOptions{})
}

// VerifyOptions make verification keyed.
type VerifyOptions struct {
	// Keys, when set, require every row to carry a MAC that verifies
	// under them: a chain rewritten with recomputed hashes is detected.
	Keys *Keys
	// Checkpoint, when set (and verified with Keys), requires every chain
	// head it vouches for to be still in the log as it was: a chain cut
	// short or deleted whole, head and all, is detected.
	Checkpoint *Checkpoint

	allowUnsigned bool
}

// VerifyAllWith is [VerifyAll] with keys and a checkpoint. The
// checkpoint's heads are looked up first, a page at a time (so memory does
// not grow with their number); a version 2 checkpoint whose heads stream
// is missing or not the one signed fails with [ErrCheckpointHeads] before
// any chain is reported.
func VerifyAllWith(ctx context.Context, q Querier, o VerifyOptions) (Report, error) {
	var (
		behind []*ChainError
		gone   int
	)
	if o.Checkpoint != nil {
		if o.Keys == nil {
			return Report{}, errors.New("audit: verify: a checkpoint needs the keys it was signed with")
		}
		if err := o.Checkpoint.verify(o.Keys); err != nil {
			return Report{}, err
		}
		var err error
		if behind, gone, err = o.Checkpoint.checkAgainst(ctx, q); err != nil {
			return Report{}, err
		}
	}
	rep, err := verify(ctx, q, nil, o)
	if err != nil {
		return rep, err
	}
	if len(behind) > 0 {
		// A chain behind the checkpoint is reported as that, once.
		reported := make(map[aggregateKey]bool, len(behind))
		for _, ce := range behind {
			reported[aggregateKey{ce.AggregateType, ce.AggregateID}] = true
		}
		for _, ce := range rep.Broken {
			if !reported[aggregateKey{ce.AggregateType, ce.AggregateID}] {
				behind = append(behind, ce)
			}
		}
		rep.Broken = behind
		rep.Chains += gone
	}
	errs := make([]error, len(rep.Broken))
	for i, ce := range rep.Broken {
		errs[i] = ce
	}
	return rep, errors.Join(errs...)
}

type aggregateKey struct{ typ, id string }

// verify reads the chains, with their heads, in one statement and so from
// one snapshot: a concurrent append is seen completely or not at all.
func verify(ctx context.Context, q Querier, only *aggregateKey, o VerifyOptions) (Report, error) {
	logs, heads := "audit_log", "audit_heads"
	var args []any
	if only != nil {
		logs = "(SELECT * FROM audit_log WHERE aggregate_type = $1 AND aggregate_id = $2)"
		heads = "(SELECT * FROM audit_heads WHERE aggregate_type = $1 AND aggregate_id = $2)"
		args = []any{only.typ, only.id}
	}
	rows, err := q.Query(ctx, `
		SELECT coalesce(l.aggregate_type, h.aggregate_type) AS t,
		       coalesce(l.aggregate_id, h.aggregate_id) AS i,
		       h.seq, h.hash,
		       l.seq, l.occurred_at, l.actor, l.action, l.payload::text, l.prev_hash, l.hash,
		       l.id, l.mac_key_id, l.mac
		FROM `+logs+` l
		FULL JOIN `+heads+` h
		  ON h.aggregate_type = l.aggregate_type AND h.aggregate_id = l.aggregate_id
		ORDER BY t, i, l.seq`, args...)
	if err != nil {
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	defer rows.Close()

	var (
		rep Report
		c   *chain
	)
	for rows.Next() {
		var (
			typ, id        string
			headSeq        *int64
			headHash       []byte
			seq            *int64
			occurred       *time.Time
			actor, action  *string
			payload        *string
			prevHash, hash []byte
			rowID          *int64
			macKeyID       *string
			mac            []byte
		)
		if err := rows.Scan(&typ, &id, &headSeq, &headHash,
			&seq, &occurred, &actor, &action, &payload, &prevHash, &hash, &rowID, &macKeyID, &mac); err != nil {
			return rep, fmt.Errorf("audit: verify: %w", err)
		}
		if c == nil || c.typ != typ || c.id != id {
			if c != nil {
				c.finish(&rep)
			}
			c = &chain{typ: typ, id: id, hasHead: headSeq != nil, prev: zeroHash, keys: o.Keys, allowUnsigned: o.allowUnsigned}
			if headSeq != nil {
				c.headSeq, c.headHash = *headSeq, headHash
			}
		}
		if seq == nil {
			continue // a head with no rows
		}
		rep.Records++
		r := &Record{
			AggregateType: typ,
			AggregateID:   id,
			Seq:           *seq,
			OccurredAt:    *occurred,
			Actor:         *actor,
			Action:        *action,
			Payload:       json.RawMessage(*payload),
			PrevHash:      prevHash,
			Hash:          hash,
			ID:            *rowID,
			MAC:           mac,
		}
		if macKeyID != nil {
			r.MACKeyID = *macKeyID
		}
		c.add(r)
	}
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("audit: verify: %w", err)
	}
	if c != nil {
		c.finish(&rep)
	}
	return rep, nil
}

// chain checks the rows of one aggregate, given in seq order.
type chain struct {
	typ, id  string
	hasHead  bool
	headSeq  int64
	headHash []byte

	keys          *Keys // when set, every row's MAC is checked
	allowUnsigned bool  // ... except rows without one

	last   int64  // seq of the last row seen
	lastID int64  // its audit_log id
	prev   []byte // stored hash of the last row seen
	err    *ChainError
}

func (c *chain) fail(seq, rowID int64, p Problem) {
	if c.err == nil {
		c.err = &ChainError{AggregateType: c.typ, AggregateID: c.id, Seq: seq, RowID: rowID, Problem: p}
	}
}

func (c *chain) add(r *Record) {
	if c.err != nil {
		return
	}
	want := c.last + 1
	switch {
	case r.Seq != want:
		c.fail(want, 0, ProblemMissing)
	case !bytes.Equal(r.PrevHash, c.prev):
		c.fail(r.Seq, r.ID, ProblemBrokenLink)
	case !bytes.Equal(chainHash(r), r.Hash):
		c.fail(r.Seq, r.ID, ProblemModified)
	case c.keys != nil && len(r.MAC) == 0:
		if !c.allowUnsigned {
			c.fail(r.Seq, r.ID, ProblemUnsigned)
		}
	case c.keys != nil:
		if ok, known := c.keys.check(r.MACKeyID, rowMACDomain, r.Hash, r.MAC); !known {
			c.fail(r.Seq, r.ID, ProblemUnknownKey)
		} else if !ok {
			c.fail(r.Seq, r.ID, ProblemBadMAC)
		}
	}
	c.last, c.lastID, c.prev = r.Seq, r.ID, r.Hash
}

func (c *chain) finish(rep *Report) {
	rep.Chains++
	switch {
	case c.err != nil:
	case !c.hasHead:
		c.fail(c.last, c.lastID, ProblemHeadMissing)
	case c.headSeq > c.last:
		c.fail(c.last+1, 0, ProblemHeadMismatch)
	case c.headSeq < c.last:
		c.fail(c.headSeq+1, 0, ProblemHeadMismatch)
	case !bytes.Equal(c.headHash, c.prev):
		c.fail(c.last, c.lastID, ProblemHeadMismatch)
	}
	if c.err != nil {
		rep.Broken = append(rep.Broken, c.err)
	}
}
