// Package store is the local runners' crash-safe record of jobs: one bbolt
// file under MANAGER_STATE_DIR, keyed by item name.
//
// Why bbolt: a single file with atomic, fsynced transactions (a crash, even
// of the machine, leaves the last committed state), no server, no cgo, and
// it reads 100k records in well under a second at start-up. Atomic JSON files
// (write + rename) would survive a process crash too, but cost a file per
// job and a directory scan per start-up, and give no transaction across the
// few records a step updates.
//
// Writes go through one writer goroutine that commits everything queued in
// one transaction (group commit): Put queues a record and returns at once,
// Sync waits until everything queued before it is on disk. A runner calls
// Put when an attempt starts (losing that record in a crash only means the
// item runs again, which executors tolerate) and Sync after recording a
// final state, before the manager acknowledges the item to its source.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/itemq/itemq/internal/runner"
)

var (
	bucketJobs  = []byte("jobs")
	bucketItems = []byte("items")
)

// op is one queued change: a record (job) or an item document (data), or
// the deletion of one (nil).
type opKey struct {
	bucket string
	key    string
}

// Store holds job records.
type Store struct {
	db *bolt.DB

	mu      sync.Mutex
	pending map[opKey][]byte // nil value: delete
	waiters []chan error
	wake    chan struct{}
	done    chan struct{}
	stopped chan struct{}
	closed  bool
}

// Options tune the store.
type Options struct {
	// NoSync skips fsync: records survive a crash of the process (the OS has
	// them) but not of the machine. Faster on slow disks.
	NoSync bool
}

// Open opens (creating if needed) the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create state dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, "jobs.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, NoSync: opts.NoSync, NoFreelistSync: true})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open %s: another manager holds it (is one already running with this MANAGER_STATE_DIR?)", path)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketJobs); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketItems)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	s := &Store{
		db:      db,
		pending: map[opKey][]byte{},
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go s.writer()
	return s, nil
}

// Load returns every record.
func (s *Store) Load(ctx context.Context) ([]runner.Job, error) {
	var jobs []runner.Job
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			var j runner.Job
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("record %q: %w", k, err)
			}
			jobs = append(jobs, j)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load job records: %w", err)
	}
	return jobs, nil
}

// Put queues a record for the next commit.
func (s *Store) Put(j runner.Job) {
	v, err := json.Marshal(j)
	if err != nil {
		panic(fmt.Sprintf("marshal job record: %v", err)) // a Job always marshals
	}
	s.queue(opKey{string(bucketJobs), j.Item}, v)
}

// Delete queues the removal of a record and of its item document.
func (s *Store) Delete(item string) {
	s.queue(opKey{string(bucketJobs), item}, nil)
	s.queue(opKey{string(bucketItems), item}, nil)
}

// PutItem queues an unfinished job's item document (to resume it after a
// restart).
func (s *Store) PutItem(item string, doc []byte) {
	s.queue(opKey{string(bucketItems), item}, append([]byte(nil), doc...))
}

// DeleteItem queues the removal of an item document (its job finished).
func (s *Store) DeleteItem(item string) { s.queue(opKey{string(bucketItems), item}, nil) }

// Item returns a stored item document, or nil.
func (s *Store) Item(item string) ([]byte, error) {
	var doc []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketItems).Get([]byte(item)); v != nil {
			doc = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read item document %q: %w", item, err)
	}
	return doc, nil
}

func (s *Store) queue(k opKey, v []byte) {
	s.mu.Lock()
	s.pending[k] = v
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Sync waits until everything queued so far is committed.
func (s *Store) Sync(ctx context.Context) error {
	ch := make(chan error, 1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("store is closed")
	}
	s.waiters = append(s.waiters, ch)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) writer() {
	defer close(s.stopped)
	for {
		select {
		case <-s.wake:
		case <-s.done:
			s.commit()
			return
		}
		s.commit()
	}
}

func (s *Store) commit() {
	s.mu.Lock()
	batch, waiters := s.pending, s.waiters
	s.pending, s.waiters = map[opKey][]byte{}, nil
	s.mu.Unlock()
	var err error
	if len(batch) > 0 {
		err = s.db.Update(func(tx *bolt.Tx) error {
			for k, v := range batch {
				b := tx.Bucket([]byte(k.bucket))
				if v == nil {
					if err := b.Delete([]byte(k.key)); err != nil {
						return err
					}
					continue
				}
				if err := b.Put([]byte(k.key), v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			err = fmt.Errorf("commit %d job records: %w", len(batch), err)
			// Keep the batch for the next try, unless newer values replaced it.
			s.mu.Lock()
			for k, v := range batch {
				if _, ok := s.pending[k]; !ok {
					s.pending[k] = v
				}
			}
			s.mu.Unlock()
		}
	}
	for _, w := range waiters {
		w <- err
	}
}

// Close commits what is queued and closes the file.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.done)
	<-s.stopped
	return s.db.Close()
}
