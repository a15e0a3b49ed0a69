package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shopcheckout/shop/internal/orders"
)

// Backups and restores. Backup copies a database that may be serving, with
// SQLite's VACUUM INTO on a read-only connection of its own: the copy is
// one read transaction's snapshot, which WAL mode lets the shop's writer go
// on committing past, and the connection neither migrates nor checkpoints.
// Restore puts a copy back in place of a database no Store has open.
//
// Both write the new file beside its destination under a temporary name,
// sync it, check it and only then rename it into place, so a crash at any
// moment leaves either the old file or the new one, never half of one.

// BackupInfo describes a database file that Backup wrote or Restore put in
// place, as read from the file itself.
type BackupInfo struct {
	Path          string // where the file is
	Size          int64  // its size in bytes
	SchemaVersion int    // the last migration applied to it
	Orders        int64  // rows in its orders table
	Events        int64  // rows in its events table: the Stripe events it stored
}

// RestoreInfo describes what Restore did.
type RestoreInfo struct {
	Restored BackupInfo // the database now at the live path
	// Previous is where the database it replaced was kept, "" when there was
	// none. Restoring that file undoes the restore.
	Previous string
	// PreviousLog is where the write-ahead log of the replaced database was
	// kept, beside Previous, when SQLite could not fold it into Previous
	// (a damaged database); "" otherwise.
	PreviousLog string
	// Latest is the last migration this program knows. When it is above
	// Restored.SchemaVersion, the next Open migrates the restored database.
	Latest int
}

// BackupOptions changes what Backup does.
type BackupOptions struct {
	// Force replaces the destination when it exists. Without it, Backup
	// refuses with an error wrapping fs.ErrExist.
	Force bool
}

// Backup writes a consistent copy of the database at dbPath to dest while
// shops may keep serving from it. It never writes to the database.
func Backup(ctx context.Context, dbPath, dest string, opts BackupOptions) (BackupInfo, error) {
	info, err := backup(ctx, dbPath, dest, opts)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("sqlite: backup: %w", err)
	}
	return info, nil
}

func backup(ctx context.Context, dbPath, dest string, opts BackupOptions) (BackupInfo, error) {
	if _, err := os.Stat(dbPath); err != nil {
		return BackupInfo{}, fmt.Errorf("no database to back up: %w", err)
	}
	if err := notTheDatabase(dbPath, dest); err != nil {
		return BackupInfo{}, err
	}
	if !opts.Force {
		if _, err := os.Lstat(dest); err == nil {
			return BackupInfo{}, fmt.Errorf("%s: %w", dest, fs.ErrExist)
		}
	}
	// The shared lock keeps a restore from swapping the file mid-copy.
	lock, err := lockShared(ctx, dbPath, 5*time.Second)
	if err != nil {
		return BackupInfo{}, err
	}
	defer lock.Close()

	if err := os.MkdirAll(filepath.Dir(dest), 0o750); err != nil {
		return BackupInfo{}, err
	}
	tmp, err := tempBeside(dest, ".tmp-")
	if err != nil {
		return BackupInfo{}, err
	}
	placed := false
	defer func() {
		if !placed {
			os.Remove(tmp)
		}
	}()
	if err := vacuumInto(ctx, dbPath, tmp); err != nil {
		return BackupInfo{}, err
	}
	if err := syncFile(tmp); err != nil {
		return BackupInfo{}, err
	}
	info, err := inspect(ctx, tmp)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("the copy failed its check: %w", err)
	}
	if err := place(tmp, dest, opts.Force); err != nil {
		return BackupInfo{}, err
	}
	placed = true
	info.Path = dest
	return info, syncDir(filepath.Dir(dest))
}

// vacuumInto copies the database at dbPath into the empty file tmp, from a
// read-only connection that takes part in none of the shop's writes.
func vacuumInto(ctx context.Context, dbPath, tmp string) error {
	src, err := fileURI(dbPath, "mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	db, err := sql.Open("sqlite", src)
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		return errors.Join(fmt.Errorf("copy %s: %w", dbPath, err), db.Close())
	}
	return db.Close()
}

// place moves tmp to dest: over it when replace is set, and otherwise only
// if dest still does not exist, which a hard link checks and does in one
// step.
func place(tmp, dest string, replace bool) error {
	if replace {
		return os.Rename(tmp, dest)
	}
	err := os.Link(tmp, dest)
	switch {
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%s: %w", dest, fs.ErrExist)
	case err != nil:
		// A file system without hard links: check, then rename.
		if _, statErr := os.Lstat(dest); statErr == nil {
			return fmt.Errorf("%s: %w", dest, fs.ErrExist)
		}
		return os.Rename(tmp, dest)
	}
	return os.Remove(tmp)
}

// Restore replaces the database at dbPath with the backup at src, after
// checking the backup, and keeps the database it replaces as
// dbPath + ".before-restore-<unix time>". It refuses, with an error
// wrapping ErrInUse, while any Store has the database open, and leaves the
// database untouched whenever it refuses.
func Restore(ctx context.Context, dbPath, src string) (RestoreInfo, error) {
	info, err := restore(ctx, dbPath, src)
	if err != nil {
		return RestoreInfo{}, fmt.Errorf("sqlite: restore: %w", err)
	}
	return info, nil
}

func restore(ctx context.Context, dbPath, src string) (RestoreInfo, error) {
	latest, err := latestVersion()
	if err != nil {
		return RestoreInfo{}, err
	}
	if _, err := os.Stat(src); err != nil {
		return RestoreInfo{}, err
	}
	if err := notTheDatabase(dbPath, src); err != nil {
		return RestoreInfo{}, err
	}
	if wal, err := os.Stat(src + "-wal"); err == nil && wal.Size() > 0 {
		return RestoreInfo{}, fmt.Errorf("%s has a write-ahead log beside it (%s-wal): it is a database that is open or was not closed cleanly, not a backup; make one with the backup command", src, src)
	}
	dir := filepath.Dir(dbPath)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return RestoreInfo{}, err
	}
	lock, err := lockExclusive(dbPath)
	if err != nil {
		return RestoreInfo{}, err
	}
	defer lock.Close()
	old, err := os.Stat(dbPath)
	hadOld := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return RestoreInfo{}, err
	}

	tmp, err := tempBeside(dbPath, ".restore-")
	if err != nil {
		return RestoreInfo{}, err
	}
	placed := false
	defer func() {
		if !placed {
			os.Remove(tmp)
		}
	}()
	if err := copyInto(tmp, src, old); err != nil {
		return RestoreInfo{}, err
	}
	// Check the copy, not the source: it is what goes live.
	info, err := inspect(ctx, tmp)
	if err != nil {
		return RestoreInfo{}, fmt.Errorf("%s is not a usable backup: %w", src, err)
	}
	if info.SchemaVersion > latest {
		return RestoreInfo{}, fmt.Errorf("%s has schema version %d, newer than this program's %d: restore it with the version of the shop that made it, or a later one", src, info.SchemaVersion, latest)
	}

	res := RestoreInfo{Latest: latest}
	if hadOld {
		if res.Previous, res.PreviousLog, err = keepOld(ctx, dbPath); err != nil {
			return RestoreInfo{}, err
		}
	}
	if err := os.Remove(dbPath + "-shm"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return RestoreInfo{}, err
	}
	if err := os.Rename(tmp, dbPath); err != nil {
		return RestoreInfo{}, err
	}
	placed = true
	info.Path = dbPath
	res.Restored = info
	return res, syncDir(dir)
}

// keepOld moves the database at path to path + ".before-restore-<unix
// time>" and returns that name. Its write-ahead log is folded into it first
// where SQLite can, so the kept copy is one file that Restore accepts; a
// log SQLite could not fold (a damaged database) moves beside the kept copy,
// where SQLite applies it when that copy is opened, and its name is
// returned too. Either way no log of the old database stays at path, where
// SQLite would apply it to the restored one.
func keepOld(ctx context.Context, path string) (prev, prevLog string, err error) {
	folded := checkpoint(ctx, path) == nil
	prev = fmt.Sprintf("%s.before-restore-%d", path, time.Now().Unix())
	// A hard link keeps a file at path until the restored one replaces it.
	if err := os.Link(path, prev); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", "", fmt.Errorf("%s already exists: wait a second and try again", prev)
		}
		if err := os.Rename(path, prev); err != nil {
			return "", "", err
		}
	}
	for _, side := range []string{"-wal", "-journal"} {
		err := os.Rename(path+side, prev+side)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return "", "", err
		case side == "-wal" && !folded:
			prevLog = prev + side
		}
	}
	return prev, prevLog, nil
}

// checkpoint copies what the write-ahead log of the database at path holds
// into the database and empties the log, and reports why it could not.
// Restore calls it under the exclusive lock, with no shop running.
func checkpoint(ctx context.Context, path string) error {
	if _, err := os.Stat(path + "-wal"); err != nil {
		return nil // no log: nothing to fold
	}
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(1000)")
	if err != nil {
		return err
	}
	var busy, log, done int
	err = db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &log, &done)
	if err == nil && (busy != 0 || log != done) {
		err = fmt.Errorf("checkpoint of %s incomplete: %d of %d frames", path, done, log)
	}
	return errors.Join(err, db.Close())
}

// copyInto copies the file src into the empty file dst and syncs it, with
// the mode and owner of like (the database dst will replace) if there is
// one.
func copyInto(dst, src string, like fs.FileInfo) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil && like != nil {
		err = out.Chmod(like.Mode().Perm())
		if err == nil {
			err = copyOwner(out, like)
		}
	}
	if err == nil {
		err = out.Sync()
	}
	return errors.Join(err, out.Close())
}

// inspect checks the database file at path, which nothing else has open,
// and reads what BackupInfo reports. It opens the file immutable: SQLite
// then takes no locks and creates no side files beside it.
func inspect(ctx context.Context, path string) (BackupInfo, error) {
	uri, err := fileURI(path, "mode=ro&immutable=1")
	if err != nil {
		return BackupInfo{}, err
	}
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return BackupInfo{}, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := integrityCheck(ctx, db); err != nil {
		return BackupInfo{}, err
	}
	var info BackupInfo
	var version sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&version); err != nil {
		return BackupInfo{}, fmt.Errorf("not a database of this shop: %w", err)
	}
	info.SchemaVersion = int(version.Int64)
	for _, c := range []struct {
		table string
		n     *int64
	}{{"orders", &info.Orders}, {"events", &info.Events}} {
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+c.table).Scan(c.n); err != nil {
			return BackupInfo{}, fmt.Errorf("not a database of this shop: %w", err)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		return BackupInfo{}, err
	}
	info.Size = st.Size()
	return info, nil
}

// integrityCheck runs PRAGMA integrity_check, which answers one row "ok"
// or up to a hundred rows of problems.
func integrityCheck(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return errors.Join(fmt.Errorf("integrity check: %w", err), rows.Close())
		}
		problems = append(problems, line)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	if len(problems) != 1 || problems[0] != "ok" {
		if len(problems) > 3 {
			problems = append(problems[:3], "...")
		}
		return fmt.Errorf("integrity check failed: %s", strings.Join(problems, "; "))
	}
	return nil
}

// latestVersion is the last migration this program carries.
func latestVersion() (int, error) {
	list, err := orders.ReadMigrations(migrations, "migrations/*.sql")
	if err != nil {
		return 0, err
	}
	if len(list) == 0 {
		return 0, nil
	}
	return list[len(list)-1].Version, nil
}

// notTheDatabase refuses other as a backup's source or destination when it
// is the database at dbPath itself, or one of the files SQLite and the
// Store keep beside it.
func notTheDatabase(dbPath, other string) error {
	a, errA := filepath.Abs(dbPath)
	b, errB := filepath.Abs(other)
	if err := errors.Join(errA, errB); err != nil {
		return err
	}
	for _, side := range []string{"", "-wal", "-shm", "-journal", lockSuffix} {
		if b == a+side {
			return fmt.Errorf("%s is the live database, or one of its files", other)
		}
	}
	if sa, err := os.Stat(dbPath); err == nil {
		if sb, err := os.Stat(other); err == nil && os.SameFile(sa, sb) {
			return fmt.Errorf("%s is the live database", other)
		}
	}
	return nil
}

// tempBeside creates an empty file, readable by its owner only (a database
// holds the shop's secrets), in the directory of path, named after it.
func tempBeside(path, infix string) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+infix+"*")
	if err != nil {
		return "", err
	}
	return f.Name(), f.Close()
}

// syncFile flushes the file at path to the disk. VACUUM INTO writes its
// output with synchronous=OFF.
func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

// syncDir flushes a directory, so that a rename in it survives power loss.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

// fileURI turns a path into the file: URI SQLite parses its own parameters
// from (mode, immutable), escaping what a path may hold and a URI may not.
func fileURI(path, query string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: query}
	return u.String(), nil
}
