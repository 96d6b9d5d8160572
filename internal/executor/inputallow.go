package executor

import (
	"net/url"

	"github.com/itemq/itemq/internal/inputallow"
)

// InputAllowEnv names the places an item's data.url and data.path may
// read: the trust boundary between whoever submits items and the
// executor's own files, network and credentials (docs/security.md).
const InputAllowEnv = inputallow.Env

// inputPolicy is the parsed EXECUTOR_INPUT_ALLOW; a refusal is a problem
// of the item (Permanent: exit code 2, no retry).
type inputPolicy struct{ inputallow.Policy }

func parseInputAllow(s string) (inputPolicy, error) {
	p, err := inputallow.Parse(s)
	return inputPolicy{p}, err
}

func (p inputPolicy) allowURL(u *url.URL) error { return Permanent(p.URL(u)) }

func (p inputPolicy) allowPath(name string) error { return Permanent(p.Path(name)) }
