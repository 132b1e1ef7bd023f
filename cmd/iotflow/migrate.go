package main

import (
	"context"
	"flag"
	"fmt"
)

func runMigrate(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	if err := parseFlags(fs, e, args, "Usage: iotflow migrate\n\nApplies pending database migrations and exits. 'iotflow serve' applies them too.\n"); err != nil {
		return helpOK(err)
	}
	cfg, err := loadConfig(e)
	if err != nil {
		return err
	}
	db, desc, applied, err := openDatabase(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if len(applied) == 0 {
		fmt.Fprintf(e.stdout, "%s: schema is up to date\n", desc)
		return nil
	}
	fmt.Fprintf(e.stdout, "%s: applied migrations %v\n", desc, applied)
	return nil
}
