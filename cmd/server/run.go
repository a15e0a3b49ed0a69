package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/joho/godotenv"

	"github.com/shopcheckout/shop/internal/app"
	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/reconcile"
)

const usage = `usage:
  server [-env-file .env]                      serve the shop
  server reconcile [-env-file .env] [-since 72h]  apply Stripe events the webhook missed
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
	if err := fl.Parse(args); err != nil {
		return err
	}
	if command != "serve" && command != "reconcile" {
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
