package blobsource

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/itemq/itemq/internal/config"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/itemapi"
)

// Data modes (BUCKET_DATA).
const (
	DataURL  = "url"  // data = the object's URL and attributes
	DataJSON = "json" // data = the object's own JSON content
)

// What an acknowledgement does with the object (BUCKET_ON_DONE, BUCKET_ON_FAILED).
const (
	ActionMove   = "move"   // copy to the archive prefix, then delete
	ActionDelete = "delete" // delete
	ActionKeep   = "keep"   // leave it where it is (it stays listed)
)

// Config is the bucket ambassador's configuration. Every field is read from
// a BUCKET_* variable; docs/bucket.md describes each.
type Config struct {
	// URL is a gocloud.dev bucket URL: s3://, gs://, azblob://, file://, mem://.
	URL string `env:"BUCKET_URL,required"`
	// Prefix selects the keys that are items; item name = key without it.
	Prefix string `env:"BUCKET_PREFIX"`
	// Pattern is a path.Match glob on the base name of the key ("*.mp4").
	Pattern string `env:"BUCKET_PATTERN"`
	// Data is url or json.
	Data string `env:"BUCKET_DATA" envDefault:"url"`
	// PollInterval is the time between two listings of the bucket.
	PollInterval time.Duration `env:"BUCKET_POLL_INTERVAL" envDefault:"15s"`
	// ListPageSize is the page size of the bucket listing; 0 picks one per
	// provider (1000 for the cloud providers, 100000 for file:// and mem://,
	// which rescan the whole tree for every page).
	ListPageSize int `env:"BUCKET_LIST_PAGE_SIZE" envDefault:"0"`
	// OnDone and OnFailed say what an acknowledgement does: move, delete, keep.
	OnDone   string `env:"BUCKET_ON_DONE" envDefault:"move"`
	OnFailed string `env:"BUCKET_ON_FAILED" envDefault:"move"`
	// DonePrefix and FailedPrefix are where move puts objects, relative to Prefix.
	DonePrefix   string `env:"BUCKET_DONE_PREFIX" envDefault:".done/"`
	FailedPrefix string `env:"BUCKET_FAILED_PREFIX" envDefault:".failed/"`
	// Submit enables POST /v1/items.
	Submit bool `env:"BUCKET_SUBMIT" envDefault:"false"`
	// SubmitPrefix is where submitted objects go, relative to Prefix.
	SubmitPrefix string `env:"BUCKET_SUBMIT_PREFIX"`
	// MaxSubmitBytes bounds a submitted item's JSON.
	// At most (and by default) itemapi.MaxDataBytes.
	MaxSubmitBytes int64 `env:"BUCKET_MAX_SUBMIT_BYTES"`
	// MaxDataBytes bounds an object read as an item's data (BUCKET_DATA=json).
	// At most (and by default) itemapi.MaxDataBytes.
	MaxDataBytes int64 `env:"BUCKET_MAX_DATA_BYTES"`
}

// ParseConfig reads and checks the BUCKET_* variables of environ.
func ParseConfig(environ []string) (Config, error) {
	var c Config
	if err := config.Parse(&c, environ); err != nil {
		return c, err
	}
	return c, config.Invalid(c.Validate())
}

// Validate checks the configuration and fills in what depends on other
// fields (the list page size).
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	u, err := url.Parse(c.URL)
	switch {
	case err != nil:
		bad("BUCKET_URL: %v", err)
	case u.User != nil:
		bad("BUCKET_URL must not carry credentials (user:password@); they come from the provider's environment (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_*)")
	default:
		// data.url must be an object URL that executors can open.
		if _, err := itemapi.JoinObjectURL(c.URL, "key"); err != nil {
			bad("BUCKET_URL: %v", err)
		}
	}
	switch c.Data {
	case DataURL, DataJSON:
	default:
		bad("BUCKET_DATA=%q: want %q or %q", c.Data, DataURL, DataJSON)
	}
	if c.PollInterval <= 0 {
		bad("BUCKET_POLL_INTERVAL=%v: must be positive", c.PollInterval)
	}
	if c.ListPageSize < 0 {
		bad("BUCKET_LIST_PAGE_SIZE=%d: must not be negative", c.ListPageSize)
	}
	if c.ListPageSize == 0 && u != nil {
		c.ListPageSize = 1000
		if u.Scheme == "file" || u.Scheme == "mem" {
			c.ListPageSize = 100000
		}
	}
	if c.Pattern != "" {
		if _, err := path.Match(c.Pattern, "x"); err != nil {
			bad("BUCKET_PATTERN=%q: %v", c.Pattern, err)
		}
	}
	for _, a := range []struct{ name, v, prefixVar, prefix string }{
		{"BUCKET_ON_DONE", c.OnDone, "BUCKET_DONE_PREFIX", c.DonePrefix},
		{"BUCKET_ON_FAILED", c.OnFailed, "BUCKET_FAILED_PREFIX", c.FailedPrefix},
	} {
		switch a.v {
		case ActionMove:
			if a.prefix == "" {
				bad("%s=move needs a non-empty %s", a.name, a.prefixVar)
			}
		case ActionDelete, ActionKeep:
		default:
			bad("%s=%q: want move, delete or keep", a.name, a.v)
		}
	}
	if c.MaxSubmitBytes == 0 {
		c.MaxSubmitBytes = itemapi.MaxDataBytes
	}
	if c.MaxDataBytes == 0 {
		c.MaxDataBytes = itemapi.MaxDataBytes
	}
	if c.MaxSubmitBytes <= 0 || c.MaxSubmitBytes > itemapi.MaxDataBytes {
		bad("BUCKET_MAX_SUBMIT_BYTES=%d: must be positive and at most %d, the item data limit every executor accepts", c.MaxSubmitBytes, itemapi.MaxDataBytes)
	}
	if c.MaxDataBytes <= 0 || c.MaxDataBytes > itemapi.MaxDataBytes {
		bad("BUCKET_MAX_DATA_BYTES=%d: must be positive and at most %d, the item data limit every executor accepts", c.MaxDataBytes, itemapi.MaxDataBytes)
	}
	if c.Submit {
		// A submitted object must be an item: not archived, matching the pattern.
		sample := c.SubmitPrefix + source.NewName("", ".json")
		if c.isArchived(c.Prefix + sample) {
			bad("BUCKET_SUBMIT_PREFIX=%q is inside an archive prefix", c.SubmitPrefix)
		}
		if c.Pattern != "" {
			if ok, _ := path.Match(c.Pattern, path.Base(sample)); !ok {
				bad("BUCKET_PATTERN=%q does not match submitted objects (named like %q)", c.Pattern, path.Base(sample))
			}
		}
		if strings.HasPrefix(c.SubmitPrefix, "/") {
			bad("BUCKET_SUBMIT_PREFIX=%q: must not start with /", c.SubmitPrefix)
		}
	}
	return errors.Join(errs...)
}

// archivePrefixes are the full key prefixes of the archives. They are
// excluded from the items whatever BUCKET_ON_DONE says, so that switching
// from move to keep does not bring archived objects back as items.
func (c *Config) archivePrefixes() []string {
	var out []string
	for _, p := range []string{c.DonePrefix, c.FailedPrefix} {
		if p != "" && (len(out) == 0 || out[0] != c.Prefix+p) {
			out = append(out, c.Prefix+p)
		}
	}
	return out
}

// isArchived reports whether a key is inside an archive prefix.
func (c *Config) isArchived(key string) bool {
	for _, a := range c.archivePrefixes() {
		if strings.HasPrefix(key, a) {
			return true
		}
	}
	return false
}
