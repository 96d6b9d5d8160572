package itemapi_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/itemq/itemq/itemapi"
)

// TestDataWithinLimitMakesItemWithinLimit: the worst name and the largest
// accepted data still make an Item document an executor reads.
func TestDataWithinLimitMakesItemWithinLimit(t *testing.T) {
	worstName := strings.Repeat("\x01", itemapi.MaxNameBytes) // \u0001: 6 bytes each
	for _, data := range []string{
		`{"p":"` + strings.Repeat("x", itemapi.MaxDataBytes-8) + `"}`,
		`{"p":"` + strings.Repeat("<", itemapi.MaxDataBytes/6-8) + `"}`,
	} {
		if err := itemapi.CheckDataSize([]byte(data)); err != nil {
			t.Fatalf("%d bytes refused: %v", len(data), err)
		}
		doc, err := json.Marshal(itemapi.NewItem(worstName, json.RawMessage(data)))
		if err != nil {
			t.Fatal(err)
		}
		if len(doc) > itemapi.MaxItemBytes {
			t.Fatalf("data of %d bytes made an Item document of %d bytes, over %d", len(data), len(doc), itemapi.MaxItemBytes)
		}
	}
	for _, data := range []string{
		`{"p":"` + strings.Repeat("x", itemapi.MaxDataBytes) + `"}`,
		`{"p":"` + strings.Repeat("<", itemapi.MaxDataBytes/5) + `"}`, // grows past the limit when escaped
	} {
		if err := itemapi.CheckDataSize([]byte(data)); !itemapi.IsTooLarge(err) {
			t.Fatalf("%d bytes: %v, want TooLarge", len(data), err)
		}
	}
	// The 1,048,576-byte submission of the issue is refused where it enters.
	if err := itemapi.CheckDataSize(make([]byte, 1<<20)); !itemapi.IsTooLarge(err) {
		t.Fatalf("1 MiB: %v", err)
	}
}
