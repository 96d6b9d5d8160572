package kafkasource

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// itemName is the item name of a message: <topic>/<partition>/<offset>.
func itemName(topic string, partition int32, offset int64) string {
	return topic + "/" + strconv.FormatInt(int64(partition), 10) + "/" + strconv.FormatInt(offset, 10)
}

// tp is a topic partition.
type tp struct {
	topic     string
	partition int32
}

// parseName splits an item name into topic, partition and offset. Topic
// names cannot contain "/", so a name has exactly three parts.
func parseName(name string) (tp, int64, bool) {
	topic, rest, ok := strings.Cut(name, "/")
	if !ok || topic == "" {
		return tp{}, 0, false
	}
	ps, os, ok := strings.Cut(rest, "/")
	if !ok {
		return tp{}, 0, false
	}
	p, err := strconv.ParseInt(ps, 10, 32)
	if err != nil || p < 0 || strconv.FormatInt(p, 10) != ps {
		return tp{}, 0, false
	}
	o, err := strconv.ParseInt(os, 10, 64)
	if err != nil || o < 0 || strconv.FormatInt(o, 10) != os {
		return tp{}, 0, false
	}
	return tp{topic, int32(p)}, o, true
}

// Meta is what the item data carries about its message, under "_kafka".
//
// Keys and header values are bytes in Kafka. They are given as JSON strings
// (key, value) when they are valid UTF-8 — the usual case — and otherwise
// base64-encoded (standard, padded) in keyBase64 / valueBase64. A null key
// or header value has neither field; an empty one is "".
type Meta struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
	Timestamp string   `json:"timestamp"` // RFC 3339, UTC, as precise as Kafka's milliseconds
	Key       *string  `json:"key,omitempty"`
	KeyBase64 *string  `json:"keyBase64,omitempty"`
	Headers   []Header `json:"headers"`
}

// Header is one message header; see Meta for the encoding of values.
type Header struct {
	Key         string  `json:"key"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"valueBase64,omitempty"`
}

// MetaKey is the field of the item data that holds Meta.
const MetaKey = "_kafka"

func bytesField(b []byte) (str, b64 *string) {
	if b == nil {
		return nil, nil
	}
	if utf8.Valid(b) {
		s := string(b)
		return &s, nil
	}
	s := base64.StdEncoding.EncodeToString(b)
	return nil, &s
}

func metaOf(r *kgo.Record) Meta {
	m := Meta{
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Timestamp: r.Timestamp.UTC().Format(time.RFC3339Nano),
		Headers:   make([]Header, 0, len(r.Headers)),
	}
	m.Key, m.KeyBase64 = bytesField(r.Key)
	for _, h := range r.Headers {
		hd := Header{Key: h.Key}
		hd.Value, hd.ValueBase64 = bytesField(h.Value)
		m.Headers = append(m.Headers, hd)
	}
	return m
}

// itemData is the item data of a message: the value itself when it is a JSON
// object, otherwise {"value": <base64 of the value, or null>}; either way
// with Meta added under "_kafka" (replacing a "_kafka" field of the value).
func itemData(r *kgo.Record) (json.RawMessage, error) {
	meta, err := json.Marshal(metaOf(r))
	if err != nil {
		return nil, fmt.Errorf("encode metadata: %w", err)
	}
	var obj map[string]json.RawMessage
	if v := bytes.TrimLeft(r.Value, " \t\r\n"); len(v) > 0 && v[0] == '{' && json.Unmarshal(r.Value, &obj) == nil && obj != nil {
		obj[MetaKey] = meta
		return json.Marshal(obj)
	}
	var value any // null for a null value (a tombstone)
	if r.Value != nil {
		value = base64.StdEncoding.EncodeToString(r.Value)
	}
	return json.Marshal(map[string]any{"value": value, MetaKey: json.RawMessage(meta)})
}
