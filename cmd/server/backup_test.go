package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/sqlite"
	"github.com/shopcheckout/shop/internal/storetest"
)

const backupWebhookSecret = "whsec_backupTestSecret"

// signedPaidEvent is a checkout.session.completed event paying o, signed as
// Stripe signs it.
func signedPaidEvent(t testing.TB, evtID string, o orders.Order) (body []byte, signature string) {
	t.Helper()
	body = storetest.PaidEventJSON(t, evtID, o)
	return body, webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: backupWebhookSecret}).Header
}

// eventIDs lists the ids in the events table of the database file at path,
// after checking the file with integrity_check.
func eventIDs(t testing.TB, path string) map[string]bool {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRowContext(t.Context(), `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check of %s: got %q, %v; want ok", path, check, err)
	}
	rows, err := db.QueryContext(t.Context(), `SELECT id FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestBackupWhileServing: the real server takes signed payment events
// without pause while `server backup` copies its database. The shop goes on
// acknowledging events during the copy; the copy passes integrity_check and
// holds every event acknowledged before the command started. `server
// restore` then refuses while the shop runs, and once it has stopped puts
// the backup in place, keeping the database it replaced.
func TestBackupWhileServing(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "shop.db")
	var list []orders.Order
	for i := range 200 {
		list = append(list, storetest.NewOrder(fmt.Sprintf("ord_bk%03d", i)))
	}
	store, err := sqlite.Open(t.Context(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	storetest.Seed(t, store, list...)
	// Some history, so the copy takes long enough for events to land during it.
	history := bytes.Repeat([]byte("h"), 2048)
	err = store.Write(t.Context(), func(ctx context.Context, tx orders.Tx) error {
		for i := range 2000 {
			rec := orders.EventRecord{ID: fmt.Sprintf("evt_old%04d", i), Type: "charge.updated", Outcome: orders.OutcomeUnmatched,
				Created: time.Now(), Received: time.Now(), Payload: history}
			if _, err := tx.InsertEvent(ctx, rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	env := map[string]string{
		"STRIPE_SECRET_KEY": testSecretKey, "STRIPE_PUBLISHABLE_KEY": testPublishableKey,
		"STRIPE_WEBHOOK_SECRET": backupWebhookSecret, "STRIPE_API_BASE": "http://127.0.0.1:9", "PORT": "0",
		"DATABASE_URL": "sqlite:" + dbPath, "RATE_LIMIT_PER_MINUTE": "0", "RATE_LIMIT_GLOBAL_PER_SECOND": "0",
	}
	base, logs, stopServer := startStoppable(t, env)
	// The commands need DATABASE_URL and nothing else.
	dbEnv := func(k string) string { return map[string]string{"DATABASE_URL": "sqlite:" + dbPath}[k] }
	noEnvFile := filepath.Join(t.TempDir(), "absent.env")
	command := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append(args[:1:1], append([]string{"-env-file", noEnvFile}, args[1:]...)...), dbEnv, &stdout, &stderr)
		return stdout.String() + stderr.String(), err
	}

	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 20 * time.Second}
	for w := range 4 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("evt_live%d_%05d", w, n)
				body, sig := signedPaidEvent(t, id, list[(w*50+n)%len(list)])
				req, err := http.NewRequest(http.MethodPost, base+"/webhook", bytes.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Stripe-Signature", sig)
				res, err := client.Do(req)
				if err != nil {
					t.Errorf("webhook %s: %v", id, err)
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					t.Errorf("webhook %s: got %d, want 200\n%s", id, res.StatusCode, logs.String())
					return
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		})
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopLoad)
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	for deadline := time.Now().Add(15 * time.Second); count() < 50; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d events acknowledged in 15s\n%s", count(), logs.String())
		}
	}

	mu.Lock()
	before := append([]string(nil), acked...)
	mu.Unlock()
	dest := filepath.Join(dir, "backups", "shop-backup.db")
	start := time.Now()
	out, err := command("backup", dest)
	took := time.Since(start)
	during := count() - len(before)
	stopLoad()
	if err != nil {
		t.Fatalf("server backup: %v\n%s", err, out)
	}
	t.Logf("backup took %v; %d events acknowledged before it, %d during it", took, len(before), during)
	if !regexp.MustCompile(`^backup written to ` + regexp.QuoteMeta(dest) + `: \d+ bytes, schema version \d+, 200 orders, \d+ events\n$`).MatchString(out) {
		t.Errorf("backup output: got %q", out)
	}
	if during == 0 {
		t.Errorf("no event was acknowledged during the %v backup: it held up the shop", took)
	}
	inBackup := eventIDs(t, dest)
	var missing []string
	for _, id := range before {
		if !inBackup[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of the %d events acknowledged before the backup are missing from it, first %s", len(missing), len(before), missing[0])
	}

	// An existing FILE needs -force, which may follow it.
	if out, err := command("backup", dest); err == nil || !strings.Contains(err.Error(), "pass -force to replace it") {
		t.Errorf("backup over an existing file: got %v, want a refusal naming -force\n%s", err, out)
	}
	if out, err := command("backup", dest, "-force"); err != nil || !strings.Contains(out, "backup written to "+dest) {
		t.Errorf("backup -force: got %v\n%s", err, out)
	}
	inBackup = eventIDs(t, dest)

	if out, err := command("restore", dest); err == nil || !strings.Contains(err.Error(), "the database at "+dbPath+" is in use by a running shop: stop it first") {
		t.Fatalf("restore while the shop serves: got %v, want a refusal\n%s", err, out)
	}

	stopServer()
	out, err = command("restore", dest)
	if err != nil {
		t.Fatalf("restore after the shop stopped: %v\n%s", err, out)
	}
	kept := regexp.MustCompile(`kept as (` + regexp.QuoteMeta(dbPath) + `\.before-restore-\d+)`).FindStringSubmatch(out)
	if !strings.HasPrefix(out, "restored "+dbPath+" from "+dest) || kept == nil {
		t.Fatalf("restore output: got %q, want what it restored and where it kept the old database", out)
	}
	if diff := cmp.Diff(inBackup, eventIDs(t, dbPath)); diff != "" {
		t.Errorf("restored events differ from the backup's (-backup +restored):\n%s", diff)
	}
	if old := eventIDs(t, kept[1]); len(old) < len(inBackup) {
		t.Errorf("the kept database has %d events, want at least the backup's %d", len(old), len(inBackup))
	}
	s, err := sqlite.Open(t.Context(), dbPath)
	if err != nil {
		t.Fatalf("open the restored database: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestBackupCommandUsage: backup and restore want one FILE, and refuse a
// PostgreSQL DATABASE_URL with a pointer to pg_dump, without echoing its
// password.
func TestBackupCommandUsage(t *testing.T) {
	noEnvFile := filepath.Join(t.TempDir(), "absent.env")
	pg := func(k string) string {
		return map[string]string{"DATABASE_URL": "postgres://shop:hunter2secret@db:5432/shop"}[k]
	}
	for _, command := range []string{"backup", "restore"} {
		for _, args := range [][]string{{command}, {command, "a.db", "b.db"}} {
			var stderr bytes.Buffer
			err := run(context.Background(), append(args, "-env-file", noEnvFile), pg, io.Discard, &stderr)
			if err == nil || !strings.Contains(err.Error(), "takes one FILE") || !strings.Contains(stderr.String(), "server "+command) {
				t.Errorf("run %q: got %v, want a usage error\n%s", args, err, stderr.String())
			}
		}
		var stdout bytes.Buffer
		err := run(context.Background(), []string{command, "-env-file", noEnvFile, filepath.Join(t.TempDir(), "shop.db")}, pg, &stdout, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "pg_dump") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s on PostgreSQL: got %v, want a pointer to pg_dump without the password", command, err)
		}
	}
}
