package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/services/console/users"
)

// usersAdd creates a console account. A local account's password is read
// from standard input (prompted for, without echo, on a terminal), never
// from the command line.
func (c *cli) usersAdd(ctx context.Context, store *users.Store, args []string) error {
	fs := flag.NewFlagSet("users add", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	name := fs.String("name", "", "user name (an e-mail address for --oidc accounts)")
	role := fs.String("role", "", "viewer, operator or admin")
	oidc := fs.Bool("oidc", false, "signs in through the OpenID provider: no password")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errors.New("usage: mlcctl users add --name N --role viewer|operator|admin [--oidc] (the password is read from stdin)")
	}
	r, err := users.ParseRole(*role)
	if err != nil {
		return err
	}
	var password secrets.Value
	if !*oidc {
		p, err := c.readSecretLine(bufio.NewReader(c.stdin), "password")
		if err != nil {
			return err
		}
		password = secrets.NewValue(p)
		if err := users.CheckPassword(password); err != nil {
			return err
		}
	}
	u, err := store.Add(ctx, users.New{Name: *name, Role: r, Password: password, Actor: actor()})
	if err != nil {
		return err
	}
	how := "password"
	if !u.Local {
		how = "OpenID provider"
	}
	fmt.Fprintf(c.stdout, "added %s %s (signs in with %s)\n", u.Role, u.Name, how)
	return nil
}

func (c *cli) usersList(ctx context.Context, store *users.Store, args []string) error {
	fs := flag.NewFlagSet("users list", flag.ContinueOnError)
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
		return c.json(list)
	}
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tROLE\tSIGNS IN WITH\tDISABLED")
	for _, u := range list {
		how := "password"
		if !u.Local {
			how = "OpenID provider"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%t\n", u.Name, u.Role, how, u.Disabled)
	}
	return w.Flush()
}
