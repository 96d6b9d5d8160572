package itemapi

import (
	"encoding/json"
)

// MaxItemBytes is the largest Item document, as itemq encodes it: the
// work item file an executor reads is at most this long.
const MaxItemBytes = 1 << 20

// MaxEnvelopeBytes is the most an Item document adds to its data: the
// kind, the apiVersion and the name, JSON-escaped (at most 6 bytes for each
// of MaxNameBytes bytes), rounded up.
const MaxEnvelopeBytes = 8 << 10

// MaxDataBytes is the largest data of an item (1 MiB − 8 KiB), JSON-encoded
// as itemq encodes it (compact, with <, > and & escaped): a submitted body,
// a DIR_DATA=json file, a BUCKET_DATA=json object. Every item within it
// makes an Item document within MaxItemBytes, whatever its name, so an item
// accepted where it enters is never refused later by an executor.
const MaxDataBytes = MaxItemBytes - MaxEnvelopeBytes

// CheckDataSize returns a TooLarge Status when data, encoded as itemq
// encodes it, is longer than MaxDataBytes.
func CheckDataSize(data []byte) error {
	n := len(data)
	if n > MaxDataBytes {
		return NewStatus(ReasonTooLarge, "item data is %d bytes, more than the limit of %d (itemapi.MaxDataBytes)", n, MaxDataBytes)
	}
	// Encoding compacts (shorter) and escapes <, >, &, U+2028 and U+2029
	// (longer, at most 6 bytes per byte): only data that could grow past
	// the limit is encoded to measure it.
	if n*6 <= MaxDataBytes {
		return nil
	}
	enc, err := json.Marshal(json.RawMessage(data))
	if err != nil {
		return NewStatus(ReasonBadRequest, "item data is not valid JSON: %v", err)
	}
	if len(enc) > MaxDataBytes {
		return NewStatus(ReasonTooLarge, "item data is %d bytes once encoded (<, > and & are escaped), more than the limit of %d (itemapi.MaxDataBytes)", len(enc), MaxDataBytes)
	}
	return nil
}
