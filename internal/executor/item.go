package executor

import (
	"bytes"
	"encoding/json"
	"io"
	"os"

	"github.com/itemq/itemq/itemapi"
)

// MaxItemFileBytes is the largest work item file an executor reads.
const MaxItemFileBytes = 1 << 20

// ReadItemFile reads and checks the work item file at path: at most
// MaxItemFileBytes, one JSON v1 Item document. Its errors name the file and
// the problem on one line, and are Permanent.
func ReadItemFile(path string) (*itemapi.Item, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, Permanentf("work item file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxItemFileBytes+1))
	if err != nil {
		return nil, 0, Permanentf("work item file %s: %w", path, err)
	}
	if len(data) > MaxItemFileBytes {
		return nil, len(data), Permanentf("work item file %s: larger than %d bytes (1 MiB)", path, MaxItemFileBytes)
	}
	var it itemapi.Item
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&it); err != nil {
		return nil, len(data), Permanentf("work item file %s: not a JSON Item document: %v", path, err)
	}
	if dec.More() {
		return nil, len(data), Permanentf("work item file %s: data after the Item document", path)
	}
	if err := it.Validate(); err != nil {
		return nil, len(data), Permanentf("work item file %s: %v", path, err)
	}
	return &it, len(data), nil
}
