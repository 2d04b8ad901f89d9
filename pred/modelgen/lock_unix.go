//go:build unix

package modelgen

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// canLock says whether lockRepository excludes other writers.
const canLock = true

// lockFile is the lock file's name inside the repository.
const lockFile = ".modelgen.lock"

// lockRepository takes an exclusive lock on the repository dir so that
// concurrent Build calls generate each model once; it returns the unlock.
// flock locks belong to an open file description, so two goroutines of one
// process exclude each other as two processes do.
func lockRepository(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, filePerm)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock model repository: %w", err)
	}
	return func() { f.Close() }, nil // Closing releases the lock.
}
