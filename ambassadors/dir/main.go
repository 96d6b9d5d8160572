// Command itemq-dir is the directory ambassador: it serves the v1 item API
// over the files under DIR_ROOT (a local or NFS-mounted directory). See
// docs/dir.md for its configuration.
package main

import (
	"os"
	"runtime/debug"

	"github.com/itemq/itemq/internal/ambassador"
	"github.com/itemq/itemq/internal/source/dirsource"
)

func main() {
	// The index is one large, long-lived heap, and each rescan makes garbage
	// in proportion to it: collect at 50% growth instead of 100%, which
	// keeps a million files under 200 MB (docs/benchmarks/dir.md), unless
	// GOGC says otherwise.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	ambassador.Main("itemq-dir", dirsource.Open)
}
