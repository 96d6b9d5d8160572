// Package idempotency remembers which item each Idempotency-Key of
// POST /v1/jobs created, so that a client that retries a submission gets
// the same job, across manager restarts. Records live in one append-only
// file of JSON lines (synced before the answer goes out), compacted when
// the store opens; a record expires after its TTL (as Stripe's keys do
// after 24 hours).
package idempotency

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// FileName is the store's file in its directory.
const FileName = "idempotency.jsonl"

// MaxKeyLen bounds an Idempotency-Key (the IETF draft's keys are UUIDs;
// 255 leaves room for any client's scheme).
const MaxKeyLen = 255

// Record is what a key created.
type Record struct {
	Key  string    `json:"key"`  // sha256 of the key (the key itself is not stored)
	Body string    `json:"body"` // sha256 of the request's body
	Item string    `json:"item"` // the item the submission created
	At   time.Time `json:"at"`
}

// Store is the set of records. It is safe for concurrent use; Lock/Unlock
// serialise whole submissions of the same store, so that two requests with
// one key cannot both create an item.
type Store struct {
	path   string
	ttl    time.Duration
	noSync bool

	sub sync.Mutex // held across lookup, submit and Put

	mu   sync.Mutex
	recs map[string]Record
	f    *os.File
}

// Open opens (creating) the store in dir. Records older than ttl are
// dropped. noSync skips the fsync of each record (tests).
func Open(dir string, ttl time.Duration, noSync bool) (*Store, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("idempotency: ttl %v must be positive", ttl)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("idempotency: create %s: %w", dir, err)
	}
	s := &Store{path: filepath.Join(dir, FileName), ttl: ttl, noSync: noSync, recs: map[string]Record{}}
	if err := s.load(); err != nil {
		return nil, err
	}
	if err := s.compact(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("idempotency: open %s: %w", s.path, err)
	}
	s.f = f
	return s, nil
}

// load reads the records; a torn last line (a crash mid-write) is skipped.
func (s *Store) load() error {
	f, err := os.Open(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("idempotency: open %s: %w", s.path, err)
	}
	defer f.Close()
	now := time.Now()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		var r Record
		if json.Unmarshal(sc.Bytes(), &r) != nil || r.Key == "" || r.Item == "" {
			continue
		}
		if now.Sub(r.At) <= s.ttl {
			s.recs[r.Key] = r
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("idempotency: read %s: %w", s.path, err)
	}
	return nil
}

// compact rewrites the file with the live records only.
func (s *Store) compact() error {
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("idempotency: compact: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, r := range s.recs {
		if err := enc.Encode(r); err != nil {
			f.Close()
			return fmt.Errorf("idempotency: compact: %w", err)
		}
	}
	if err := w.Flush(); err == nil && !s.noSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("idempotency: compact: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("idempotency: compact: %w", err)
	}
	return nil
}

// Hash is the hex SHA-256 of b (how keys and bodies are compared).
func Hash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// CheckKey validates an Idempotency-Key header value.
func CheckKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("Idempotency-Key must be 1 to %d characters", MaxKeyLen)
	}
	for _, c := range key {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("Idempotency-Key holds a control character")
		}
	}
	return nil
}

// Lock serialises submissions with keys; Unlock ends one.
func (s *Store) Lock()   { s.sub.Lock() }
func (s *Store) Unlock() { s.sub.Unlock() }

// Lookup returns the live record of a key.
func (s *Store) Lookup(key string) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[Hash([]byte(key))]
	if ok && time.Since(r.At) > s.ttl {
		delete(s.recs, r.Key)
		return Record{}, false
	}
	return r, ok
}

// Put records what a key created, durably, before the caller answers.
func (s *Store) Put(key string, body []byte, item string) error {
	r := Record{Key: Hash([]byte(key)), Body: Hash(body), Item: item, At: time.Now().UTC()}
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errors.New("idempotency: store closed")
	}
	if _, err := s.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("idempotency: write %s: %w", s.path, err)
	}
	if !s.noSync {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("idempotency: sync %s: %w", s.path, err)
		}
	}
	s.recs[r.Key] = r
	return nil
}

// Len is the number of live records.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

// Close closes the file.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
