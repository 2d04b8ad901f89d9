//go:build !unix

package modelgen

// canLock says whether lockRepository excludes other writers.
const canLock = false

// lockRepository does nothing where flock is unavailable: concurrent writers
// may then generate a model more than once, and the atomic rename still
// leaves one complete model in place.
func lockRepository(string) (func(), error) { return func() {}, nil }
