package itemapi_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/itemq/itemq/itemapi"
)

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"a/b c/%2F/é/日本", true},
		{"..", true},
		{strings.Repeat("x", itemapi.MaxNameBytes), true},
		{strings.Repeat("é", itemapi.MaxNameBytes/2), true},
		{"", false},
		{strings.Repeat("x", itemapi.MaxNameBytes+1), false},
		{"a\x00b", false},
		{"\xff", false},
		{"a\xc3", false},
	} {
		err := itemapi.ValidateName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateName(%.40q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestEscapeName(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"a", "a"},
		{"a/b", "a%2Fb"},
		{"a b", "a%20b"},
		{"100%", "100%25"},
		{"a?b#c", "a%3Fb%23c"},
		{".", "%2E"},
		{"..", "%2E%2E"},
		{"...", "..."},
	} {
		got := itemapi.EscapeName(tc.name)
		if got != tc.want {
			t.Errorf("EscapeName(%q) = %q, want %q", tc.name, got, tc.want)
		}
		if back, err := url.PathUnescape(got); err != nil || back != tc.name {
			t.Errorf("PathUnescape(%q) = %q, %v", got, back, err)
		}
	}
	if got := itemapi.ItemPath("a/b"); got != "/v1/items/a%2Fb" {
		t.Errorf("ItemPath = %q", got)
	}
}

func TestItemValidate(t *testing.T) {
	good := itemapi.NewItem("a/b", json.RawMessage(`{"x":1}`))
	if err := good.Validate(); err != nil {
		t.Fatalf("valid item: %v", err)
	}
	if empty := itemapi.NewItem("a", nil); empty.Validate() != nil || string(empty.Data) != "{}" {
		t.Fatalf("NewItem with no data: %s %v", empty.Data, empty.Validate())
	}
	for what, it := range map[string]itemapi.Item{
		"wrong kind":    {Kind: "ItemList", APIVersion: "v1", Name: "a", Data: json.RawMessage(`{}`)},
		"no kind":       {APIVersion: "v1", Name: "a", Data: json.RawMessage(`{}`)},
		"wrong version": {Kind: "Item", APIVersion: "v2", Name: "a", Data: json.RawMessage(`{}`)},
		"empty name":    {Kind: "Item", APIVersion: "v1", Data: json.RawMessage(`{}`)},
		"NUL in name":   {Kind: "Item", APIVersion: "v1", Name: "a\x00", Data: json.RawMessage(`{}`)},
		"no data":       {Kind: "Item", APIVersion: "v1", Name: "a"},
		"null data":     {Kind: "Item", APIVersion: "v1", Name: "a", Data: json.RawMessage(`null`)},
		"bad data":      {Kind: "Item", APIVersion: "v1", Name: "a", Data: json.RawMessage(`{"x":`)},
	} {
		if err := it.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", what, it)
		}
	}
}

func TestWireDocuments(t *testing.T) {
	b, _ := json.Marshal(itemapi.NewItemList(nil, ""))
	if string(b) != `{"kind":"ItemList","apiVersion":"v1","items":[]}` {
		t.Errorf("empty list: %s", b)
	}
	b, _ = json.Marshal(itemapi.NewItemList([]string{"a"}, "tok"))
	if string(b) != `{"kind":"ItemList","apiVersion":"v1","items":["a"],"continue":"tok"}` {
		t.Errorf("list: %s", b)
	}
	b, _ = json.Marshal(itemapi.WatchEvent{Type: itemapi.Synced})
	if string(b) != `{"type":"SYNCED"}` {
		t.Errorf("synced: %s", b)
	}
	b, _ = json.Marshal(itemapi.WatchEvent{Type: itemapi.Added, Name: "a/b"})
	if string(b) != `{"type":"ADDED","name":"a/b"}` {
		t.Errorf("added: %s", b)
	}
	for _, s := range []string{"succeeded", "failed"} {
		if o, err := itemapi.ParseOutcome(s); err != nil || string(o) != s {
			t.Errorf("ParseOutcome(%q) = %q, %v", s, o, err)
		}
	}
	if _, err := itemapi.ParseOutcome("done"); err == nil {
		t.Error("ParseOutcome accepted done")
	}
}
