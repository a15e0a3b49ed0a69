//go:build !unix

package sqlite

import (
	"errors"
	"io/fs"
	"os"
)

// tryLock has no flock(2) to call on this system: the shared lock is
// granted, so the shop runs, and the exclusive one is refused, so Restore
// never replaces a database it cannot tell is unused.
func tryLock(f *os.File, exclusive bool) (bool, error) {
	if exclusive {
		return false, errors.New("restore needs flock(2), which this system lacks: stop the shop and copy the backup into place by hand")
	}
	return true, nil
}

// copyOwner leaves the owner alone where there are no Unix owners.
func copyOwner(*os.File, fs.FileInfo) error { return nil }
