package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/iotflow/iotflow/internal/fleet"
)

const adminUsage = "Usage: iotflow admin create-token [--name NAME]\n\nMints an admin bearer token, stores its hash and prints the token once.\n"

func runAdmin(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || (args[0] != "create-token" && args[0] != "--help" && args[0] != "-h" && args[0] != "help") {
		fmt.Fprint(e.stderr, adminUsage)
		return fmt.Errorf("admin: expected the subcommand create-token")
	}
	if args[0] != "create-token" {
		fmt.Fprint(e.stdout, adminUsage)
		return nil
	}
	fs := flag.NewFlagSet("admin create-token", flag.ContinueOnError)
	name := fs.String("name", "", "a name to recognise the token by in audit lines (default: token-<time>)")
	if err := parseFlags(fs, e, args[1:], adminUsage+"\nFlags:\n"); err != nil {
		return helpOK(err)
	}
	cfg, err := loadConfig(e)
	if err != nil {
		return err
	}
	db, _, _, err := openDatabase(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	svc := fleet.New(db, fleet.Options{})
	if *name == "" {
		*name = "token-" + svc.Now().Format("20060102-150405.000000")
	}
	secret, t, err := svc.CreateAdminToken(ctx, *name)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Admin token %q (id %d), shown only this once:\n\n    %s\n\nUse it as 'Authorization: Bearer <token>'.\n", t.Name, t.ID, secret)
	return nil
}
