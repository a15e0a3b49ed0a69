package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/storetest"
)

// insertOrderAndEvent stores the order "ord_"+id and the event "evt_"+id
// about it in one write.
func insertOrderAndEvent(ctx context.Context, s *Store, id string, payload []byte) error {
	return s.Write(ctx, func(ctx context.Context, tx orders.Tx) error {
		return insertPair(ctx, tx, id, payload)
	})
}

func insertPair(ctx context.Context, tx orders.Tx, id string, payload []byte) error {
	o := storetest.NewOrder("ord_" + id)
	if err := tx.InsertOrder(ctx, o); err != nil {
		return err
	}
	now := time.Now()
	_, err := tx.InsertEvent(ctx, orders.EventRecord{
		ID: "evt_" + id, Type: orders.EventSessionCompleted, APIVersion: "2025-09-30.clover", SessionID: o.SessionID,
		OrderID: o.ID, Outcome: orders.OutcomeApplied, Created: now, Received: now, Payload: payload,
	})
	return err
}

// column reads one column of every row of a table of the database file at
// path, through a connection of its own.
func column(t testing.TB, path, query string) map[string]bool {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), query)
	if err != nil {
		t.Fatalf("%s on %s: %v", query, path, err)
	}
	got := map[string]bool{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		got[v] = true
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		t.Fatal(err)
	}
	return got
}

// integrity runs PRAGMA integrity_check on the database file at path.
func integrity(t testing.TB, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(t.Context(), `PRAGMA integrity_check`).Scan(&res); err != nil {
		t.Fatalf("integrity_check on %s: %v", path, err)
	}
	return res
}

// names lists the files in dir.
func names(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var list []string
	for _, e := range entries {
		list = append(list, e.Name())
	}
	return list
}

// TestBackupUnderLoad: four writers commit orders and events without pause
// while Backup copies a 14 MB database. The shop goes on acknowledging
// writes during the copy, and the copy passes integrity_check and holds
// every write acknowledged before the backup began.
func TestBackupUnderLoad(t *testing.T) {
	ctx := t.Context()
	s, path := openTest(t)
	big := bytes.Repeat([]byte("p"), 2048)
	const nSeed = 3000
	err := s.Write(ctx, func(ctx context.Context, tx orders.Tx) error {
		for i := range nSeed {
			if err := insertPair(ctx, tx, fmt.Sprintf("seed%05d", i), big); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("load%d_%06d", w, n)
				if err := insertOrderAndEvent(ctx, s, id, big[:200]); err != nil {
					t.Errorf("write %s: %v", id, err)
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
	ackedNow := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	for deadline := time.Now().Add(10 * time.Second); ackedNow() < 100; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d writes acknowledged in 10s", ackedNow())
		}
		time.Sleep(time.Millisecond)
	}

	mu.Lock()
	before := slices.Clone(acked)
	mu.Unlock()
	dest := filepath.Join(t.TempDir(), "backups", "shop-backup.db")
	start := time.Now()
	info, err := Backup(ctx, path, dest, BackupOptions{})
	took := time.Since(start)
	during := ackedNow() - len(before)
	stopLoad()
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	t.Logf("backup of %d bytes took %v; %d writes acknowledged before it, %d during it", info.Size, took, len(before), during)
	if during == 0 {
		t.Errorf("no write was acknowledged during the %v backup: it held up the writer", took)
	}

	if got := integrity(t, dest); got != "ok" {
		t.Fatalf("integrity_check of the backup: got %q, want ok", got)
	}
	events := column(t, dest, `SELECT id FROM events`)
	ordersIn := column(t, dest, `SELECT id FROM orders`)
	var missing []string
	for _, id := range before {
		if !events["evt_"+id] || !ordersIn["ord_"+id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of the %d writes acknowledged before the backup are missing from it, first %s", len(missing), len(before), missing[0])
	}
	if !events["evt_seed00000"] || !events[fmt.Sprintf("evt_seed%05d", nSeed-1)] {
		t.Error("the seeded events are missing from the backup")
	}

	st, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	latest, err := latestVersion()
	if err != nil {
		t.Fatal(err)
	}
	if info.Path != dest || info.Size != st.Size() || info.SchemaVersion != latest ||
		info.Orders != int64(len(ordersIn)) || info.Events != int64(len(events)) || info.Events < int64(nSeed+len(before)) {
		t.Errorf("BackupInfo: got %+v, want path %s, size %d, schema %d, %d orders, %d events", info, dest, st.Size(), latest, len(ordersIn), len(events))
	}
	if got := names(t, filepath.Dir(dest)); !slices.Equal(got, []string{"shop-backup.db"}) {
		t.Errorf("files beside the backup: got %q, want only shop-backup.db", got)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("backup mode: got %v, want readable by its owner only", perm)
	}
}

// seeded opens a store at path, stores the order and event named by each
// id, and closes it.
func seeded(t testing.TB, path string, ids ...string) {
	t.Helper()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := insertOrderAndEvent(t.Context(), s, id, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// backupOf makes a database holding ids and returns the path of a backup of
// it.
func backupOf(t testing.TB, ids ...string) string {
	t.Helper()
	dir := t.TempDir()
	seeded(t, filepath.Join(dir, "source.db"), ids...)
	dest := filepath.Join(dir, "backup.db")
	if _, err := Backup(t.Context(), filepath.Join(dir, "source.db"), dest, BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	return dest
}

func sum(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestBackupRefusesToOverwrite(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "shop.db")
	seeded(t, path, "one")
	dest := filepath.Join(dir, "backup.db")
	if err := os.WriteFile(dest, []byte("an older backup"), 0o600); err != nil {
		t.Fatal(err)
	}

	_, err := Backup(ctx, path, dest, BackupOptions{})
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Backup over an existing file: got %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(dest); string(b) != "an older backup" {
		t.Errorf("the existing file was changed: %q", b)
	}

	info, err := Backup(ctx, path, dest, BackupOptions{Force: true})
	if err != nil {
		t.Fatalf("Backup with Force: %v", err)
	}
	if info.Orders != 1 || info.Events != 1 || !column(t, dest, `SELECT id FROM events`)["evt_one"] {
		t.Errorf("forced backup: got %+v, want the database's one order and event", info)
	}

	for _, same := range []string{path, path + "-wal", path + lockSuffix, filepath.Join(dir, ".", "shop.db")} {
		if _, err := Backup(ctx, path, same, BackupOptions{Force: true}); err == nil || !strings.Contains(err.Error(), "live database") {
			t.Errorf("Backup to %s: got %v, want a refusal naming the live database", same, err)
		}
	}
	if got := integrity(t, path); got != "ok" {
		t.Errorf("live database after the refusals: integrity %q", got)
	}

	missing := filepath.Join(dir, "missing.db")
	if _, err := Backup(ctx, missing, filepath.Join(dir, "b2.db"), BackupOptions{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Backup of a missing database: got %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Backup of a missing database created it: %v", err)
	}
	if got, want := names(t, dir), []string{"backup.db", "shop.db", "shop.db.lock"}; !slices.Equal(got, want) {
		t.Errorf("files left: got %q, want %q", got, want)
	}
}

// TestRestoreRefusesOpenDatabase: two stores have the live database open;
// Restore refuses until both are closed, then replaces it, keeps the old
// one, and a Store opens the restored one with the backup's data.
func TestRestoreRefusesOpenDatabase(t *testing.T) {
	ctx := t.Context()
	bak := backupOf(t, "from_backup")
	dir := t.TempDir()
	live := filepath.Join(dir, "shop.db")
	seeded(t, live, "live")
	s1, err := Open(ctx, live)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, live)
	if err != nil {
		t.Fatalf("a second Open of the same file: %v", err)
	}
	before := sum(t, live)

	for _, s := range []*Store{s1, s2} {
		_, err := Restore(ctx, live, bak)
		want := "the database at " + live + " is in use by a running shop: stop it first"
		if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), want) {
			t.Fatalf("Restore with a store open: got %v, want %q", err, want)
		}
		if sum(t, live) != before {
			t.Fatal("the refused restore changed the live database")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}

	info, err := Restore(ctx, live, bak)
	if err != nil {
		t.Fatalf("Restore after Close: %v", err)
	}
	latest, err := latestVersion()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^`+regexp.QuoteMeta(live)+`\.before-restore-\d+$`).MatchString(info.Previous) || info.PreviousLog != "" {
		t.Errorf("Previous: got %q (log %q), want %s.before-restore-<unix time> and no log", info.Previous, info.PreviousLog, live)
	}
	if info.Restored.Path != live || info.Restored.Orders != 1 || info.Restored.Events != 1 || info.Restored.SchemaVersion != latest || info.Latest != latest {
		t.Errorf("RestoreInfo: got %+v", info)
	}
	for _, side := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(live + side); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s of the old database left in place: %v", side, err)
		}
	}
	if got := sum(t, info.Previous); got != before {
		t.Error("the kept database differs from the one replaced")
	}

	s, err := Open(ctx, live)
	if err != nil {
		t.Fatalf("Open the restored database: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Order(ctx, "ord_from_backup"); err != nil {
		t.Errorf("the backup's order: %v", err)
	}
	if _, err := s.Order(ctx, "ord_live"); !errors.Is(err, orders.ErrNotFound) {
		t.Errorf("the replaced database's order: got %v, want ErrNotFound", err)
	}
	if _, err := Restore(ctx, live, bak); !errors.Is(err, ErrInUse) {
		t.Errorf("Restore with the restored database open: got %v, want ErrInUse", err)
	}
	if got := column(t, info.Previous, `SELECT id FROM orders`); !got["ord_live"] {
		t.Errorf("the kept database: got orders %v, want ord_live", got)
	}
}

// TestRestoreRejectsBadBackups: a backup that is not a SQLite file, fails
// its integrity check, is not this shop's, or comes from a newer schema is
// refused, and the live database and its directory stay as they were.
func TestRestoreRejectsBadBackups(t *testing.T) {
	ctx := t.Context()
	good := backupOf(t, "b1", "b2")
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	damaged := slices.Clone(goodBytes)
	for i := 4096; i < 4096+600 && i < len(damaged); i++ {
		damaged[i] = 0xA5 // the second page, overwritten
	}

	tmp := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	foreign := filepath.Join(tmp, "foreign.db")
	db, err := sql.Open("sqlite", foreign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('hello')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	newer := write("newer.db", goodBytes)
	db, err = sql.Open("sqlite", newer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// An index out of step with its table: every query still answers, and
	// only integrity_check notices.
	skewed := write("skewed.db", goodBytes)
	db, err = sql.Open("sqlite", skewed)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.ExecContext(ctx, `CREATE INDEX skew ON events (order_id); PRAGMA writable_schema = ON;
		UPDATE sqlite_schema SET sql = 'CREATE INDEX skew ON events (session_id)' WHERE name = 'skew'`)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	tests := []struct {
		name, src, want string
	}{
		{"not sqlite", write("text.db", bytes.Repeat([]byte("not a database "), 500)), "not a usable backup"},
		{"empty", write("empty.db", nil), "not a database of this shop"},
		{"truncated", write("half.db", goodBytes[:len(goodBytes)/2]), "not a usable backup"},
		{"damaged page", write("damaged.db", damaged), "not a usable backup"},
		{"index out of step", skewed, "integrity check failed"},
		{"another program's database", foreign, "not a database of this shop"},
		{"newer schema", newer, "schema version 9999, newer than"},
		{"missing", filepath.Join(tmp, "nothing.db"), "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			live := filepath.Join(dir, "shop.db")
			seeded(t, live, "live")
			before, files := sum(t, live), names(t, dir)
			_, err := Restore(ctx, live, tt.src)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Restore: got %v, want an error containing %q", err, tt.want)
			}
			if sum(t, live) != before {
				t.Error("the live database changed")
			}
			if got := names(t, dir); !slices.Equal(got, files) {
				t.Errorf("files beside the live database: got %q, want %q", got, files)
			}
		})
	}

	// The good backup goes in, as a check that the cases above fail for
	// their own reasons.
	live := filepath.Join(t.TempDir(), "shop.db")
	seeded(t, live, "live")
	if _, err := Restore(ctx, live, good); err != nil {
		t.Errorf("Restore of the good backup: %v", err)
	}
}

// TestRestoreAfterCrash: the shop was killed with commits still in its
// write-ahead log. The restore keeps those commits in the database it puts
// aside, and does not let that log touch the restored database.
func TestRestoreAfterCrash(t *testing.T) {
	ctx := t.Context()
	bak := backupOf(t, "from_backup")

	// Copy the database and its log while a store has them open and idle:
	// what a SIGKILL leaves behind.
	running := filepath.Join(t.TempDir(), "shop.db")
	s, err := Open(ctx, running)
	if err != nil {
		t.Fatal(err)
	}
	if err := insertOrderAndEvent(ctx, s, "in_wal", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(t.TempDir(), "shop.db")
	for _, side := range []string{"", "-wal"} {
		b, err := os.ReadFile(running + side)
		if err != nil {
			t.Fatal(err)
		}
		if side == "-wal" && len(b) == 0 {
			t.Fatal("the write-ahead log is empty: nothing to test")
		}
		if err := os.WriteFile(live+side, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	info, err := Restore(ctx, live, bak)
	if err != nil {
		t.Fatal(err)
	}
	if info.PreviousLog != "" {
		t.Errorf("PreviousLog: got %q, want the log folded into %s", info.PreviousLog, info.Previous)
	}
	if _, err := os.Stat(info.Previous + "-wal"); err == nil {
		t.Errorf("a log beside the kept database: its commits were not folded in")
	}
	if got := column(t, info.Previous, `SELECT id FROM orders`); !got["ord_in_wal"] {
		t.Errorf("the kept database lost the commits of its log: orders %v", got)
	}
	if got := integrity(t, live); got != "ok" {
		t.Fatalf("restored database: integrity %q", got)
	}
	if diff := cmp.Diff(map[string]bool{"ord_from_backup": true}, column(t, live, `SELECT id FROM orders`)); diff != "" {
		t.Errorf("restored database orders (-want +got):\n%s", diff)
	}
}

// TestOpenWaitsForRestore: while a restore holds the exclusive lock, Open
// waits for it up to the busy timeout rather than open a file about to be
// replaced.
func TestOpenWaitsForRestore(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "shop.db")
	lock, err := lockExclusive(path)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Open(ctx, path, WithBusyTimeout(50*time.Millisecond)); err == nil || !strings.Contains(err.Error(), "being restored") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open during a restore: got %v, want a refusal", err)
	}
	time.AfterFunc(100*time.Millisecond, func() { lock.Close() })
	s, err := Open(ctx, path, WithBusyTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("Open once the restore has finished: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := lockExclusive(path)
	if err != nil {
		t.Fatalf("the lock after Close: %v", err)
	}
	again.Close()
}
