package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/joho/godotenv"

	"github.com/shopcheckout/shop/internal/app"
	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/reconcile"
	"github.com/shopcheckout/shop/internal/sqlite"
)

const usage = `usage:
  server [-env-file .env]                         serve the shop
  server reconcile [-env-file .env] [-since 72h]  apply Stripe events the webhook missed
  server backup [-env-file .env] [-force] FILE    copy the SQLite database to FILE; the shop may keep serving
  server restore [-env-file .env] FILE            replace the SQLite database with the backup FILE; stop the shop first
`

// run builds the shop from args and the environment and serves until ctx is
// done, or runs a one-off command. Everything it needs comes in through its
// parameters.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	command := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		command, args = args[0], args[1:]
	}
	fl := flag.NewFlagSet("server "+command, flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() { fmt.Fprint(stderr, usage); fl.PrintDefaults() }
	envFile := fl.String("env-file", ".env", "file of KEY=value settings; the real environment wins")
	since := fl.Duration("since", 72*time.Hour, "reconcile: how far back to look (Stripe keeps 30 days: at most 720h)")
	force := fl.Bool("force", false, "backup: replace FILE if it exists")
	if err := fl.Parse(args); err != nil {
		return err
	}
	var file string
	switch command {
	case "serve", "reconcile":
	case "backup", "restore":
		// FILE may come before the flags as well as after them.
		if fl.NArg() > 0 {
			file = fl.Arg(0)
			if err := fl.Parse(fl.Args()[1:]); err != nil {
				return err
			}
		}
		if file == "" || fl.NArg() > 0 {
			fmt.Fprint(stderr, usage)
			return fmt.Errorf("%s takes one FILE", command)
		}
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", command)
	}
	if *since <= 0 || *since > reconcile.MaxWindow {
		return fmt.Errorf("-since must be from 1s to %v", reconcile.MaxWindow)
	}

	getenv, err := withEnvFile(*envFile, getenv)
	if err != nil {
		return err
	}
	if file != "" {
		db, err := config.LoadDatabase(getenv)
		if err != nil {
			return err
		}
		return runFileCommand(ctx, command, db, file, *force, stdout)
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		if config.IsConfigError(err) {
			fmt.Fprintf(stderr, "%v\n\nSet these in the environment or in %s (copy .env.example to start).\n", err, *envFile)
			return errors.New("invalid configuration")
		}
		return err
	}
	log := app.NewLogger(cfg, stderr)
	shop, err := app.New(ctx, cfg, log, app.Options{})
	if err != nil {
		return err
	}
	defer shop.Close()
	if command == "reconcile" {
		rep, err := shop.Reconcile(ctx, *since)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "reconciled: %d events listed, %d applied now, %d already applied\n", rep.Listed, rep.Applied, rep.Duplicates)
		return nil
	}
	return shop.Serve(ctx, stdout)
}

// runFileCommand runs backup or restore on the SQLite database db names. It
// builds no shop: neither command needs Stripe, and backup must not migrate
// a database a shop is serving from.
func runFileCommand(ctx context.Context, command string, db config.Database, file string, force bool, stdout io.Writer) error {
	if db.Driver != "sqlite" {
		return fmt.Errorf("%s works on a SQLite database, and DATABASE_URL names PostgreSQL: use pg_dump and pg_restore (see docs/backups.md)", command)
	}
	if command == "backup" {
		info, err := sqlite.Backup(ctx, db.DSN, file, sqlite.BackupOptions{Force: force})
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w (pass -force to replace it)", err)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "backup written to %s: %d bytes, schema version %d, %d orders, %d events\n",
			info.Path, info.Size, info.SchemaVersion, info.Orders, info.Events)
		return nil
	}
	info, err := sqlite.Restore(ctx, db.DSN, file)
	if err != nil {
		return err
	}
	r := info.Restored
	fmt.Fprintf(stdout, "restored %s from %s: %d bytes, schema version %d, %d orders, %d events\n",
		r.Path, file, r.Size, r.SchemaVersion, r.Orders, r.Events)
	if r.SchemaVersion < info.Latest {
		fmt.Fprintf(stdout, "the shop brings its schema from version %d up to %d when it next starts\n", r.SchemaVersion, info.Latest)
	}
	if info.Previous != "" {
		fmt.Fprintf(stdout, "the database it replaced is kept as %s: restore that file to undo\n", info.Previous)
	}
	if info.PreviousLog != "" {
		fmt.Fprintf(stdout, "its write-ahead log, which SQLite could not fold into it, is kept beside it as %s\n", info.PreviousLog)
	}
	return nil
}

// withEnvFile layers a .env file under the real environment. A missing file
// is fine.
func withEnvFile(path string, getenv func(string) string) (func(string) string, error) {
	file, err := godotenv.Read(path)
	if errors.Is(err, os.ErrNotExist) {
		return getenv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return file[k]
	}, nil
}
