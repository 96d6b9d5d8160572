package kafkasource

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestNames(t *testing.T) {
	for _, c := range []struct {
		topic string
		p     int32
		o     int64
	}{{"orders", 0, 0}, {"a.b_c-d", 17, 123456789012}} {
		n := itemName(c.topic, c.p, c.o)
		k, o, ok := parseName(n)
		if !ok || k.topic != c.topic || k.partition != c.p || o != c.o {
			t.Fatalf("parseName(%q) = %v %d %v", n, k, o, ok)
		}
	}
	for _, bad := range []string{"", "t", "t/1", "t/1/2/3", "/1/2", "t/x/2", "t/1/x", "t/-1/2", "t/1/-2", "t/01/2", "t/1/+2", "t/1/", "k/never-there.json"} {
		if _, _, ok := parseName(bad); ok {
			t.Fatalf("parseName(%q) accepted", bad)
		}
	}
}

func decode(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("item data %s: %v", raw, err)
	}
	return m
}

func TestItemData(t *testing.T) {
	ts := time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.FixedZone("x", 3600))
	base := kgo.Record{Topic: "jobs", Partition: 2, Offset: 41, Timestamp: ts}

	// A JSON object value is the data itself, with _kafka added (and a
	// _kafka of its own replaced).
	r := base
	r.Value = []byte(` {"url":"s3://in/a.mp4","n":1,"_kafka":"mine"}`)
	r.Key = []byte("user-7")
	r.Headers = []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}, {Key: "bin", Value: []byte{0xff, 0x00}}, {Key: "nil"}, {Key: "trace", Value: []byte("")}}
	raw, err := itemData(&r)
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, raw)
	want := map[string]any{
		"url": "s3://in/a.mp4", "n": 1.0,
		"_kafka": map[string]any{
			"topic": "jobs", "partition": 2.0, "offset": 41.0, "timestamp": "2026-03-04T04:06:07.89Z",
			"key": "user-7",
			"headers": []any{
				map[string]any{"key": "trace", "value": "abc"},
				map[string]any{"key": "bin", "valueBase64": "/wA="},
				map[string]any{"key": "nil"},
				map[string]any{"key": "trace", "value": ""},
			},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("object value:\n got %v\nwant %v", got, want)
	}

	// Anything else is base64 under "value"; a binary key is keyBase64;
	// a null value (tombstone) is null; no headers is [].
	for _, c := range []struct {
		value []byte
		want  any
	}{
		{[]byte("plain text"), "cGxhaW4gdGV4dA=="},
		{[]byte(`[1,2]`), "WzEsMl0="},
		{[]byte(`{"broken":`), "eyJicm9rZW4iOg=="},
		{[]byte{}, ""},
		{nil, nil},
	} {
		r := base
		r.Value = c.value
		r.Key = []byte{0xfe}
		raw, err := itemData(&r)
		if err != nil {
			t.Fatal(err)
		}
		got := decode(t, raw)
		if !reflect.DeepEqual(got["value"], c.want) {
			t.Fatalf("value %q: data %s, want value %v", c.value, raw, c.want)
		}
		meta := got["_kafka"].(map[string]any)
		if meta["keyBase64"] != "/g==" || meta["key"] != nil {
			t.Fatalf("binary key: %s", raw)
		}
		if hs, ok := meta["headers"].([]any); !ok || len(hs) != 0 {
			t.Fatalf("no headers should be []: %s", raw)
		}
		if len(got) != 2 {
			t.Fatalf("non-object value: want only value and _kafka: %s", raw)
		}
	}
}
