package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/term"

	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/connectors/jde"
	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/audit/auditkv"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/config"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/services/console/users"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/operator"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/settlement"
)

const usage = `Usage: mlcctl <command> [arguments]

Commands:
  migrate                         apply database migrations
  connections add --name N --kind ifs|jde|gocardless
                  [--settings JSON | --settings-file PATH]
                  --secret NAME=@PATH | --secret NAME=-   (repeatable; - reads a line from stdin)
  connections list [--json]       list connections (never their secrets)
  connections remove NAME         remove a connection without collection history
  connections rotate-keys         re-seal secrets under the current MLC_MASTER_KEY
  connections ping [NAME...]      authenticate and read one page from each connection
  audit verify                    recompute every audit chain and check every row's MAC
                                  (keys from MLC_MASTER_KEY); names each tampered row
  exceptions list [--status open|replayed|escalated|resolved|all] [--json]
  exceptions escalate ID --note TEXT
  collections show ERP-CONNECTION COMPANY INVOICE [--json]   state and audit trail
  collections replay ERP-CONNECTION COMPANY INVOICE          retry or re-collect a failed collection
  collections escalate ERP-CONNECTION COMPANY INVOICE --note TEXT
  mandates list [--state awaiting_payer|requesting|fulfilled|cancelled|expired|all] [--json]
                                  customers asked to authorise a mandate, with their link
  mandates resend ID              a new link for a customer whose link expired or was cancelled
  payouts list [--from DATE] [--to DATE] [--connection NAME] [--state STATE] [--limit N] [--json]
                                  GoCardless payouts (bank lines): reference, arrival, amount, fees
  payouts show PAYOUT|BANK-REFERENCE [--json]   the invoices it settled and its items, unmatched marked
  payouts repost PAYOUT|BANK-REFERENCE [--note TEXT]
                                  post again the deposits the ERP refused or that ran out of retries
                                  (same keys: never a second deposit)
  report month-end --from DATE --to DATE [--connection NAME] [--format csv|json]
                                  collected, fees, refunds, charge-backs, paid out and in flight
                                  per connection, company and currency (payouts by arrival date)
  users add --name N --role viewer|operator|admin [--oidc]   console account (password from stdin)
  users list [--json]             console accounts (never their passwords)

`

// actor names the operator in the audit log.
func actor() string {
	if u := os.Getenv("USER"); u != "" {
		return "mlcctl:" + u
	}
	return "mlcctl"
}

func (c *cli) run(ctx context.Context, args []string) error {
	env := config.New(c.lookup)
	common := config.LoadCommon(env)
	if len(args) == 0 || config.HelpRequested(args[:1]) {
		fmt.Fprint(c.stdout, usage)
		config.LoadKeyring(env) // so the usage lists it
		env.Usage(c.stdout)
		return nil
	}
	// Only the commands that seal or open secrets need the master key.
	// The audit log is signed and verified under keys derived from it:
	// whenever it is given, entries mlcctl writes are signed.
	var keys *secrets.Keyring
	if _, given := c.lookup(config.VarMasterKey); needsKeys(args) || given {
		keys = config.LoadKeyring(env)
	}
	if err := env.Err(); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	if keys != nil {
		audit.SignWith(audit.KeysFrom(keys))
	}
	db, err := database.Open(ctx, common.DatabaseURL.Reveal())
	if err != nil {
		return err
	}
	defer db.Close()

	switch cmd := strings.Join(args[:min(2, len(args))], " "); {
	case args[0] == "migrate":
		return c.migrate(ctx, db)
	case cmd == "connections add":
		return c.connectionsAdd(ctx, connections.NewStore(db, keys), args[2:])
	case cmd == "connections list":
		return c.connectionsList(ctx, connections.NewStore(db, keys), args[2:])
	case cmd == "connections remove":
		if len(args) != 3 {
			return errors.New("usage: mlcctl connections remove NAME")
		}
		if err := connections.NewStore(db, keys).Remove(ctx, args[2], actor()); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "removed %s\n", args[2])
		return nil
	case cmd == "connections rotate-keys":
		n, err := connections.NewStore(db, keys).Rotate(ctx, actor())
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "re-sealed %d secrets under key %s\n", n, keys.PrimaryID())
		return nil
	case cmd == "connections ping":
		return c.connectionsPing(ctx, connections.NewStore(db, keys), args[2:])
	case cmd == "users add":
		return c.usersAdd(ctx, users.NewStore(db), args[2:])
	case cmd == "users list":
		return c.usersList(ctx, users.NewStore(db), args[2:])
	case cmd == "audit verify":
		return c.auditVerify(ctx, db, audit.KeysFrom(keys), common)
	case cmd == "exceptions list":
		return c.exceptionsList(ctx, operator.NewDesk(db, connections.NewStore(db, keys), nil), args[2:])
	case cmd == "exceptions escalate":
		return c.exceptionsEscalate(ctx, operator.NewDesk(db, connections.NewStore(db, keys), nil), args[2:])
	case args[0] == "collections" && len(args) >= 2:
		return c.collections(ctx, operator.NewDesk(db, connections.NewStore(db, keys), nil), args[1], args[2:])
	case cmd == "payouts list" || cmd == "payouts show":
		return c.payouts(ctx, settlement.New(db), args[1], args[2:])
	case cmd == "payouts repost":
		return c.payoutsRepost(ctx, operator.NewDesk(db, connections.NewStore(db, keys), nil), settlement.New(db), args[2:])
	case cmd == "report month-end":
		return c.monthEnd(ctx, settlement.New(db), args[2:])
	case cmd == "mandates list" || cmd == "mandates resend":
		return c.mandates(ctx, operator.NewDesk(db, connections.NewStore(db, keys), nil), args[1], args[2:])
	default:
		return fmt.Errorf("unknown command %q; run mlcctl --help", strings.Join(args, " "))
	}
}

func needsKeys(args []string) bool {
	return len(args) >= 2 && (args[0] == "connections" && (args[1] == "add" || args[1] == "rotate-keys" || args[1] == "ping") ||
		args[0] == "audit" && args[1] == "verify" ||
		args[0] == "collections" && args[1] == "replay" || args[0] == "mandates" && args[1] == "resend" ||
		// users add audits the new account, and audit rows are signed.
		args[0] == "users" && args[1] == "add")
}

func (c *cli) migrate(ctx context.Context, db *pgxpool.Pool) error {
	if err := database.Migrate(ctx, db); err != nil {
		return err
	}
	v, err := database.MigrationVersion(ctx, db)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "database at migration %d\n", v)
	return nil
}

// secretFlags collects repeated --secret NAME=@PATH / NAME=- flags.
type secretFlags []string

func (s *secretFlags) String() string     { return strings.Join(*s, ",") }
func (s *secretFlags) Set(v string) error { *s = append(*s, v); return nil }

func (c *cli) connectionsAdd(ctx context.Context, store *connections.Store, args []string) error {
	fs := flag.NewFlagSet("connections add", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	name := fs.String("name", "", "connection name")
	kind := fs.String("kind", "", "ifs, jde or gocardless")
	settingsJSON := fs.String("settings", "", "settings as a JSON object")
	settingsFile := fs.String("settings-file", "", "file holding the settings JSON object")
	var secretArgs secretFlags
	fs.Var(&secretArgs, "secret", "NAME=@PATH (from a file) or NAME=- (a line from stdin); repeatable")
	if err := fs.Parse(args); err != nil {
		return err
	}
	k, err := connections.ParseKind(*kind)
	if err != nil {
		return err
	}
	settings, err := readSettings(*settingsJSON, *settingsFile)
	if err != nil {
		return err
	}
	if err := checkERPSettings(k, settings); err != nil {
		return fmt.Errorf("--settings: %w", err)
	}
	vals, err := c.readSecrets(secretArgs)
	if err != nil {
		return err
	}
	conn, err := store.Add(ctx, connections.New{Name: *name, Kind: k, Settings: settings, Secrets: vals, Actor: actor()})
	if err != nil {
		return err
	}
	sealed := make([]string, 0, len(conn.Secrets))
	for name, keyID := range conn.Secrets {
		sealed = append(sealed, name+" under key "+keyID)
	}
	sort.Strings(sealed)
	fmt.Fprintf(c.stdout, "added %s connection %s (secrets sealed: %s)\n", conn.Kind, conn.Name, strings.Join(sealed, ", "))
	return nil
}

// checkERPSettings refuses, when a connection is saved, ERP settings the
// services would refuse when they use it (fee accounts of companies the
// connection does not serve, malformed accounts, unknown presets...), so a
// mistake is seen at once rather than as failed postings.
func checkERPSettings(kind connections.Kind, settings map[string]any) error {
	var err error
	switch kind {
	case connections.KindIFS:
		_, err = ifscloud.ParseSettings(settings)
	case connections.KindJDE:
		_, err = jde.ParseSettings(settings)
	}
	return err
}

func readSettings(inline, path string) (map[string]any, error) {
	if inline != "" && path != "" {
		return nil, errors.New("give --settings or --settings-file, not both")
	}
	raw := []byte(inline)
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("settings file: %w", err)
		}
		defer f.Close()
		// One byte over the limit is enough to refuse it.
		if raw, err = io.ReadAll(io.LimitReader(f, connections.MaxSettingsBytes+1)); err != nil {
			return nil, fmt.Errorf("settings file: %w", err)
		}
	}
	return connections.ParseSettings(raw)
}

// readSecrets resolves NAME=@PATH and NAME=- arguments. Inline values are
// refused so they never reach shell history or the process list.
func (c *cli) readSecrets(args []string) (map[string]secrets.Value, error) {
	out := map[string]secrets.Value{}
	var stdin *bufio.Reader
	for _, arg := range args {
		name, source, ok := strings.Cut(arg, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--secret %s: want NAME=@PATH or NAME=-", name)
		}
		var value string
		switch {
		case source == "-":
			if stdin == nil {
				stdin = bufio.NewReader(c.stdin)
			}
			v, err := c.readSecretLine(stdin, name)
			if err != nil {
				return nil, err
			}
			value = v
		case strings.HasPrefix(source, "@"):
			b, err := os.ReadFile(source[1:])
			if err != nil {
				return nil, fmt.Errorf("--secret %s: %w", name, err)
			}
			value = strings.TrimRight(string(b), "\r\n")
		default:
			return nil, fmt.Errorf("--secret %s: inline values are refused (they end up in shell history); use %s=@PATH or %s=-", name, name, name)
		}
		if value == "" {
			return nil, fmt.Errorf("--secret %s: empty value", name)
		}
		out[name] = secrets.NewValue(value)
	}
	return out, nil
}

// readSecretLine reads one line; on a terminal it prompts and turns echo off.
func (c *cli) readSecretLine(r *bufio.Reader, name string) (string, error) {
	if f, ok := c.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(c.stderr, "%s: ", name)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(c.stderr)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", name, err)
		}
		return string(b), nil
	}
	line, err := r.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("read %s from stdin: %w", name, err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func (c *cli) connectionsList(ctx context.Context, store *connections.Store, args []string) error {
	fs := flag.NewFlagSet("connections list", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	list, err := store.List(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tKIND\tCOMPANIES\tBASE URL\tSECRETS (key id)\tCREATED")
	for _, conn := range list {
		names := make([]string, 0, len(conn.Secrets))
		for name, keyID := range conn.Secrets {
			names = append(names, name+" ("+keyID+")")
		}
		sort.Strings(names)
		baseURL, _ := conn.Settings["base_url"].(string)
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", conn.Name, conn.Kind, strings.Join(conn.CompanyCodes(), ","),
			baseURL, strings.Join(names, ", "), conn.CreatedAt.UTC().Format("2006-01-02 15:04"))
	}
	return w.Flush()
}

// auditVerify recomputes every chain and checks every row's MAC under the
// audit keys, naming each broken chain and its first bad row.
//
// With NATS_URL set, the newest signed checkpoint of the chain heads is
// read from JetStream (the orchestrator stores one every few minutes) and
// the log checked against it too: a chain deleted whole, or cut short,
// is then reported. In Kubernetes the NATS user mlcctl may read that
// bucket and nothing else (deploy/k8s/base/accounts.conf).
func (c *cli) auditVerify(ctx context.Context, db *pgxpool.Pool, keys *audit.Keys, common config.Common) error {
	opts := audit.VerifyOptions{Keys: keys}
	if _, given := c.lookup(config.VarNATSURL); given {
		cp, closeNATS, err := c.latestCheckpoint(ctx, common)
		if err != nil {
			return err
		}
		defer closeNATS() // a version 2 checkpoint's heads are read while verifying
		if cp == nil {
			fmt.Fprintln(c.stdout, "no audit checkpoint in JetStream yet: deleted chains cannot be detected")
		} else {
			fmt.Fprintf(c.stdout, "checked against the checkpoint of %s (%d chains)\n", cp.TakenAt.Format(time.RFC3339), cp.Chains())
		}
		opts.Checkpoint = cp
	}
	rep, err := audit.VerifyAllWith(ctx, db, opts)
	for _, broken := range rep.Broken {
		fmt.Fprintln(c.stdout, broken)
	}
	if err != nil && len(rep.Broken) == 0 {
		// Nothing was checked: the checkpoint is forged, or the log unreadable.
		return fmt.Errorf("audit log not verified: %w", err)
	}
	if err != nil {
		return fmt.Errorf("audit log does not verify: %d of %d chains broken", len(rep.Broken), rep.Chains)
	}
	fmt.Fprintf(c.stdout, "audit log verified: %d chains, %d records\n", rep.Chains, rep.Records)
	return nil
}

// latestCheckpoint reads the newest audit checkpoint from JetStream; the
// connection stays open, for its heads, until closeNATS.
func (c *cli) latestCheckpoint(ctx context.Context, common config.Common) (cp *audit.Checkpoint, closeNATS func(), err error) {
	var opts []bus.ConnectOption
	if common.NATSUser != "" {
		opts = append(opts, bus.UserPassword(common.NATSUser, common.NATSPassword.Reveal()))
	}
	if common.NATSCAFile != "" {
		opts = append(opts, bus.RootCA(common.NATSCAFile))
	}
	nc, err := bus.Connect(ctx, common.NATSURL, "mlcctl", slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			nc.Close()
		}
	}()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, err
	}
	store, err := auditkv.OpenExisting(ctx, js)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nc.Close, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if cp, err = store.Latest(ctx); err != nil {
		return nil, nil, err
	}
	return cp, nc.Close, nil
}
