package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// The lock file. Every Store holds a shared flock(2) lock on path + ".lock"
// from Open to Close, and so does Backup while it copies; Restore takes the
// exclusive lock, without waiting, before it touches anything. A lock held
// by a process ends with the process, however it ends, so a shop killed
// with SIGKILL never leaves the database looking in use. The lock lives on a
// file of its own, not on the database: SQLite takes POSIX locks on the
// database file, and a second kind of lock there could confuse anyone
// reading about it.
const lockSuffix = ".lock"

// ErrInUse is wrapped by Restore when a Store, in this process or another,
// has the database open.
var ErrInUse = errors.New("in use by a running shop")

// lockPoll is how often Open retries the shared lock while a restore holds
// the exclusive one.
const lockPoll = 20 * time.Millisecond

// openLock opens, creating it if needed, the lock file of the database at
// path. Read-only is enough for flock, and lets a user who may read the
// data directory but not write to it take a backup.
func openLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path+lockSuffix, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	return f, nil
}

// lockShared takes the shared lock on the database at path, waiting up to
// wait while a restore holds the exclusive lock. The lock is released by
// closing the returned file.
func lockShared(ctx context.Context, path string, wait time.Duration) (*os.File, error) {
	f, err := openLock(path)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for {
		ok, err := tryLock(f, false)
		switch {
		case err != nil:
			return nil, errors.Join(fmt.Errorf("lock %s: %w", f.Name(), err), f.Close())
		case ok:
			return f, nil
		case !time.Now().Before(deadline):
			return nil, errors.Join(fmt.Errorf("the database at %s is being restored: try again once the restore has finished", path), f.Close())
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(ctx.Err(), f.Close())
		case <-time.After(lockPoll):
		}
	}
}

// lockExclusive takes the exclusive lock on the database at path, or fails
// with ErrInUse if anyone holds the shared one.
func lockExclusive(path string) (*os.File, error) {
	f, err := openLock(path)
	if err != nil {
		return nil, err
	}
	ok, err := tryLock(f, true)
	switch {
	case err != nil:
		return nil, errors.Join(fmt.Errorf("lock %s: %w", f.Name(), err), f.Close())
	case !ok:
		return nil, errors.Join(fmt.Errorf("the database at %s is %w: stop it first", path, ErrInUse), f.Close())
	}
	return f, nil
}
