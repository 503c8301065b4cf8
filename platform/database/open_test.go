package database_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"

	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

func TestOpen(t *testing.T) {
	ctx := context.Background()
	pool, err := database.Open(ctx, testsupport.PostgresURL(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer pool.Close()

	if _, ok := pool.Config().ConnConfig.Tracer.(*otelpgx.Tracer); !ok {
		t.Errorf("ConnConfig.Tracer = %T, want *otelpgx.Tracer", pool.Config().ConnConfig.Tracer)
	}
	var one int
	if err := pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 = %d, %v", one, err)
	}
}

// closedPort returns a loopback port on which nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return strconv.Itoa(port)
}

func TestOpenErrorsHidePassword(t *testing.T) {
	port := closedPort(t)
	tests := []struct {
		name    string
		url     string
		secrets []string
	}{
		{"unreachable url", "postgres://mlc:S3cret%2Fpw@127.0.0.1:" + port + "/mlc?sslmode=disable&connect_timeout=2",
			[]string{"S3cret%2Fpw", "S3cret/pw"}},
		{"unreachable key value", "host=127.0.0.1 port=" + port + " user=mlc password='kv s3cret' sslmode=disable connect_timeout=2",
			[]string{"kv s3cret"}},
		{"malformed url", "postgres://mlc:hunter22@127.0.0.1:notaport/mlc",
			[]string{"hunter22"}},
		{"unknown setting", "postgres://mlc:hunter23@127.0.0.1:" + port + "/mlc?pool_max_conns=lots",
			[]string{"hunter23"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			pool, err := database.Open(ctx, tt.url)
			if err == nil {
				pool.Close()
				t.Fatal("Open succeeded, want error")
			}
			for _, s := range tt.secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q contains the password %q", err, s)
				}
			}
		})
	}
}

func TestWithTx(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t)
	if _, err := pool.Exec(ctx, `CREATE TABLE t (v int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	insert := func(v int) func(pgx.Tx) error {
		return func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO t VALUES ($1)`, v)
			return err
		}
	}
	errBoom := errors.New("boom")

	tests := []struct {
		name    string
		fn      func(pgx.Tx) error
		panics  bool
		wantErr error // matched with errors.Is; nil means no error expected
		anyErr  bool  // some error expected, identity not checked
		want    int   // rows after the call
	}{
		{name: "commit", fn: insert(1), want: 1},
		{name: "fn error rolls back", fn: func(tx pgx.Tx) error {
			if err := insert(2)(tx); err != nil {
				return err
			}
			return errBoom
		}, wantErr: errBoom, want: 1},
		{name: "panic rolls back", fn: func(tx pgx.Tx) error {
			if err := insert(3)(tx); err != nil {
				return err
			}
			panic("boom")
		}, panics: true, want: 1},
		{name: "sql error rolls back", fn: func(tx pgx.Tx) error {
			if err := insert(4)(tx); err != nil {
				return err
			}
			return insert(1)(tx) // duplicate key
		}, anyErr: true, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if r := recover(); (r != nil) != tt.panics {
						t.Errorf("recovered %v, want panic %v", r, tt.panics)
					}
				}()
				err = database.WithTx(ctx, pool, tt.fn)
			}()
			switch {
			case tt.anyErr:
				if err == nil {
					t.Error("WithTx error = nil, want an error")
				}
			case tt.panics:
			case !errors.Is(err, tt.wantErr):
				t.Errorf("WithTx error = %v, want %v", err, tt.wantErr)
			}
			if got := count(); got != tt.want {
				t.Errorf("rows = %d, want %d", got, tt.want)
			}
		})
	}
	// No connection may be left holding an open transaction.
	if s := pool.Stat(); s.AcquiredConns() != 0 {
		t.Errorf("acquired connections after WithTx = %d, want 0", s.AcquiredConns())
	}
}

func TestWithTxNestedUsesSavepoint(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t)
	if _, err := pool.Exec(ctx, `CREATE TABLE t (v int)`); err != nil {
		t.Fatal(err)
	}
	errInner := errors.New("inner")
	err := database.WithTx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO t VALUES (1)`); err != nil {
			return err
		}
		err := database.WithTx(ctx, tx, func(inner pgx.Tx) error {
			if _, err := inner.Exec(ctx, `INSERT INTO t VALUES (2)`); err != nil {
				return err
			}
			return errInner
		})
		if !errors.Is(err, errInner) {
			t.Errorf("inner WithTx = %v, want %v", err, errInner)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	rows, _ := pool.Query(ctx, `SELECT v FROM t ORDER BY v`)
	got, err = pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != 1 {
		t.Errorf("rows = %v, want [1]: the outer insert kept, the inner one rolled back", got)
	}
}

// A connection keeps the description cache (pgx makes it a 512-entry map
// up front) only when its exec mode reads it or the URL sizes it; queries
// in the default mode and in exec mode (the console's planned-per-query
// ones) work whatever the pool's mode.
func TestOpenKeepsOnlyTheCacheItsModeReads(t *testing.T) {
	ctx := context.Background()
	url := testsupport.PostgresURL(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	tests := []struct {
		name                   string
		url                    string
		mode                   pgx.QueryExecMode
		statements, describing int
	}{
		{"cache_statement", url, 0, 512, 0},
		{"cache_describe", url, pgx.QueryExecModeCacheDescribe, 512, 512},
		{"exec", url, pgx.QueryExecModeExec, 512, 0},
		{"sized in the URL", url + sep + "description_cache_capacity=16", 0, 512, 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := database.OpenWith(ctx, tt.url, database.Options{ExecMode: tt.mode})
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			cc := pool.Config().ConnConfig
			if cc.StatementCacheCapacity != tt.statements || cc.DescriptionCacheCapacity != tt.describing {
				t.Errorf("statement cache %d, description cache %d; want %d, %d",
					cc.StatementCacheCapacity, cc.DescriptionCacheCapacity, tt.statements, tt.describing)
			}
			for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec} {
				for range 2 { // the second run would read the cache
					var n int
					if err := pool.QueryRow(ctx, "SELECT $1::int + 1", mode, 41).Scan(&n); err != nil || n != 42 {
						t.Fatalf("query in mode %v: %d, %v", mode, n, err)
					}
				}
			}
		})
	}
}
