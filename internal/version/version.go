// Package version holds the build's version, stamped by the Makefile with
// -ldflags "-X github.com/itemq/itemq/internal/version.Version=… -X …Revision=…".
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

var (
	// Version is the release version (git describe), "dev" when unstamped.
	Version = "dev"
	// Revision is the git commit, "unknown" when unstamped.
	Revision = "unknown"
)

func init() {
	if Revision != "unknown" {
		return
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				Revision = s.Value
			}
		}
	}
}

// String is the one line a binary prints for --version.
func String(binary string) string {
	return fmt.Sprintf("%s %s (revision %s, %s, %s/%s)", binary, Version, Revision, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
