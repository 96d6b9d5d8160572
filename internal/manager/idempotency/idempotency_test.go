package idempotency

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRecordsSurviveReopenAndExpire(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put("k1", []byte(`{"a":1}`), "item-1"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A crash mid-write leaves a torn last line: it is skipped.
	f, _ := os.OpenFile(filepath.Join(dir, FileName), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"key":"abc","bo`)
	f.Close()

	s, err = Open(dir, time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := s.Lookup("k1")
	if !ok || r.Item != "item-1" || r.Body != Hash([]byte(`{"a":1}`)) {
		t.Fatalf("Lookup after reopen: %+v %v", r, ok)
	}
	if _, ok := s.Lookup("k2"); ok {
		t.Fatal("an unknown key was found")
	}
	raw, _ := os.ReadFile(filepath.Join(dir, FileName))
	if strings.Contains(string(raw), "k1") || strings.Contains(string(raw), `"key":"abc"`) {
		t.Errorf("the file holds the key in clear, or the torn line after compaction: %s", raw)
	}
	s.Close()

	// Expired records are dropped.
	s, err = Open(dir, time.Nanosecond, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := s.Lookup("k1"); ok || s.Len() != 0 {
		t.Error("an expired record was kept")
	}
}

func TestCheckKey(t *testing.T) {
	for _, k := range []string{"", strings.Repeat("x", MaxKeyLen+1), "a\nb"} {
		if CheckKey(k) == nil {
			t.Errorf("CheckKey(%q) accepted", k)
		}
	}
	if err := CheckKey("0b9c2f1e-5f7a-4b8e-9d1c-3a2b1c0d9e8f"); err != nil {
		t.Error(err)
	}
}
