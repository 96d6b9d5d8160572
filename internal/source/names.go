package source

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// NewName returns a unique, time-sortable name for a submitted item: prefix,
// the UTC time to the nanosecond, 8 random hex digits, suffix. Names made
// later sort later (to the nanosecond; ties are broken at random).
func NewName(prefix, suffix string) string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	return prefix + time.Now().UTC().Format("20060102T150405.000000000Z") + "-" + hex.EncodeToString(r[:]) + suffix
}
