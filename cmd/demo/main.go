// Command demo runs the whole shop on this machine with no Stripe account and
// no network: stripe-mock (Stripe's API mock) and mailpit (an SMTP server
// with a web page showing what it received) as subprocesses, the Checkout
// simulator and the shop in demo mode, wired to each other. It prints the
// shop's URL and mailpit's, and stops everything on Ctrl-C. Without mailpit
// it runs without email, and says so.
//
// Usage:
//
//	demo [-port 8000] [-sim-port 12113] [-mock-port 12111] [-stripe-mock PATH]
//	     [-mail-port 1025] [-mail-web-port 8025] [-mailpit PATH] [-db data/demo.db] [-v]
//
// `make demo` installs the pinned stripe-mock and mailpit and runs them.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		stop()
		os.Exit(1)
	}
}
