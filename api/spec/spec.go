// Package spec holds the parts of the preprocessing contract that prep and
// pred must compute identically: the schema version and the fingerprint of a
// PreprocessSpec.
package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"google.golang.org/protobuf/proto"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

// SchemaVersion is the highest PreprocessSpec.schema_version defined by this
// release of the api module.
const SchemaVersion = 1

// fingerprintPrefix names the hash so the format can change without ambiguity.
const fingerprintPrefix = "sha256:"

// Fingerprint returns a stable identifier of s: a SHA-256 over its
// deterministic protobuf serialization, unknown fields included, so that two
// specs share a fingerprint only if every field (even one the caller cannot
// interpret) is equal. A nil spec has the empty fingerprint.
func Fingerprint(s *predv1.PreprocessSpec) (string, error) {
	if s == nil {
		return "", nil
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("serialize preprocess spec: %w", err)
	}
	sum := sha256.Sum256(b)
	return fingerprintPrefix + hex.EncodeToString(sum[:16]), nil
}
