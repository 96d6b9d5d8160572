// Command itemq-dir is the directory ambassador: it serves the v1 item API
// over the files under DIR_ROOT (a local or NFS-mounted directory). See
// docs/dir.md for its configuration.
package main

import (
	"github.com/itemq/itemq/internal/ambassador"
	"github.com/itemq/itemq/internal/source/dirsource"
)

func main() {
	ambassador.Main("itemq-dir", dirsource.Open)
}
