package dirsource

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/itemapi"
)

// Config is the directory driver's configuration, read from DIR_*
// environment variables (see docs/dir.md for the table).
type Config struct {
	// Root is the directory whose files are the items (local or NFS).
	Root string `env:"DIR_ROOT,required"`
	// Pattern is a glob (path.Match) on a file's base name.
	Pattern string `env:"DIR_PATTERN" envDefault:"*"`
	// Recursive lists files in subdirectories too.
	Recursive bool `env:"DIR_RECURSIVE" envDefault:"true"`
	// Data is what an item's data holds: "file" (path, url, size, modTime)
	// or "json" (the file's own content, which must be a JSON object).
	Data string `env:"DIR_DATA" envDefault:"file"`
	// MaxDataBytes bounds the size of a file served with Data "json"; it
	// is at most (and by default) itemapi.MaxDataBytes.
	MaxDataBytes int64 `env:"DIR_MAX_DATA_BYTES"`
	// Watch keeps the index current with fsnotify (inotify) besides the
	// periodic rescan. Turn it off on NFS, where inotify sees only this
	// machine's changes.
	Watch bool `env:"DIR_WATCH" envDefault:"true"`
	// PollInterval is the time between full rescans.
	PollInterval time.Duration `env:"DIR_POLL_INTERVAL" envDefault:"30s"`
	// Settle is how long a file's size and mtime must stay unchanged before
	// it is listed (0: at once).
	Settle time.Duration `env:"DIR_SETTLE" envDefault:"2s"`
	// OnDone is what an acknowledgement does: move, delete or keep.
	OnDone string `env:"DIR_ON_DONE" envDefault:"move"`
	// DoneDir and FailedDir receive acknowledged files (OnDone "move"):
	// relative to Root, or absolute on the same filesystem.
	DoneDir   string `env:"DIR_DONE_DIR" envDefault:".done"`
	FailedDir string `env:"DIR_FAILED_DIR" envDefault:".failed"`
	// Submit accepts POST /v1/items, writing each body as a new JSON file.
	Submit bool `env:"DIR_SUBMIT" envDefault:"false"`
	// SubmitSubdir is the subdirectory of Root that submitted files go to.
	SubmitSubdir string `env:"DIR_SUBMIT_SUBDIR"`
	// MaxSubmitBytes bounds a submitted body; at most (and by default)
	// itemapi.MaxDataBytes.
	MaxSubmitBytes int64 `env:"DIR_MAX_SUBMIT_BYTES"`
}

// Data modes.
const (
	DataFile = "file"
	DataJSON = "json"
)

// Acknowledgement modes.
const (
	OnDoneMove   = "move"
	OnDoneDelete = "delete"
	OnDoneKeep   = "keep"
)

// Submitted files are named source.NewName(submitPrefix, submitSuffix).
const (
	submitPrefix = "job-"
	submitSuffix = ".json"
)

// validate checks the configuration that does not need the filesystem.
func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Root == "" {
		bad("DIR_ROOT is empty")
	}
	if strings.Contains(c.Pattern, "/") {
		bad("DIR_PATTERN=%q: a pattern matches base names and cannot hold %q", c.Pattern, "/")
	} else if _, err := path.Match(c.Pattern, "x"); err != nil {
		bad("DIR_PATTERN=%q: %v", c.Pattern, err)
	}
	switch c.Data {
	case DataFile, DataJSON:
	default:
		bad("DIR_DATA=%q: want %q or %q", c.Data, DataFile, DataJSON)
	}
	if c.MaxDataBytes == 0 {
		c.MaxDataBytes = itemapi.MaxDataBytes
	}
	if c.MaxDataBytes <= 0 || c.MaxDataBytes > itemapi.MaxDataBytes {
		bad("DIR_MAX_DATA_BYTES=%d: must be positive and at most %d, the item data limit every executor accepts", c.MaxDataBytes, itemapi.MaxDataBytes)
	}
	if c.PollInterval <= 0 {
		bad("DIR_POLL_INTERVAL=%v: must be positive", c.PollInterval)
	}
	if c.Settle < 0 {
		bad("DIR_SETTLE=%v: must not be negative", c.Settle)
	}
	switch c.OnDone {
	case OnDoneMove:
		if c.DoneDir == "" || c.FailedDir == "" {
			bad("DIR_DONE_DIR and DIR_FAILED_DIR must not be empty with DIR_ON_DONE=move")
		}
	case OnDoneDelete, OnDoneKeep:
	default:
		bad("DIR_ON_DONE=%q: want move, delete or keep", c.OnDone)
	}
	if c.MaxSubmitBytes == 0 {
		c.MaxSubmitBytes = itemapi.MaxDataBytes
	}
	if c.MaxSubmitBytes <= 0 || c.MaxSubmitBytes > itemapi.MaxDataBytes {
		bad("DIR_MAX_SUBMIT_BYTES=%d: must be positive and at most %d, the item data limit every executor accepts", c.MaxSubmitBytes, itemapi.MaxDataBytes)
	}
	if c.Submit {
		sample := source.NewName(submitPrefix, submitSuffix)
		if ok, _ := path.Match(c.Pattern, sample); !ok {
			bad("DIR_SUBMIT=true but DIR_PATTERN=%q does not match submitted files such as %q: they would never be listed", c.Pattern, sample)
		}
		if c.SubmitSubdir != "" {
			sub := filepath.ToSlash(c.SubmitSubdir)
			if !filepath.IsLocal(c.SubmitSubdir) || path.Clean(sub) != sub {
				bad("DIR_SUBMIT_SUBDIR=%q: want a clean relative path inside DIR_ROOT", c.SubmitSubdir)
			} else if !c.Recursive {
				bad("DIR_SUBMIT_SUBDIR=%q needs DIR_RECURSIVE=true, or submitted files would never be listed", c.SubmitSubdir)
			}
		}
	}
	return errors.Join(errs...)
}
