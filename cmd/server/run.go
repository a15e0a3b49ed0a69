package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/joho/godotenv"

	"github.com/shopcheckout/shop/internal/app"
	"github.com/shopcheckout/shop/internal/config"
)

// run builds the shop from args and the environment and serves until ctx is
// done. Everything it needs comes in through its parameters.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("server", flag.ContinueOnError)
	fl.SetOutput(stderr)
	envFile := fl.String("env-file", ".env", "file of KEY=value settings; the real environment wins")
	if err := fl.Parse(args); err != nil {
		return err
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
	log := app.NewLogger(cfg.LogFormat, stderr)
	shop, err := app.New(ctx, cfg, log, app.Options{})
	if err != nil {
		return err
	}
	defer shop.Close()
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
