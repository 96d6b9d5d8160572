package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/store"
)

func TestRecordsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			item := fmt.Sprintf("item-%03d", i)
			s.PutItem(item, []byte(`{"name":"`+item+`"}`))
			s.Put(runner.Job{Item: item, Name: "q-x", Phase: runner.PhaseRunning, Attempts: 1})
			s.Put(runner.Job{Item: item, Name: "q-x", Phase: runner.PhaseSucceeded, Attempts: 1, FinishedAt: time.Unix(100, 0).UTC()})
			if i%2 == 0 {
				s.DeleteItem(item)
			}
		}(i)
	}
	wg.Wait()
	s.Delete("item-099")
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// A second Open while the first holds the file is refused clearly.
	if _, err := store.Open(dir, store.Options{}); err == nil {
		t.Fatal("a second store opened the same file")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s2, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	jobs, err := s2.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 99 {
		t.Fatalf("%d records after reopen, want 99", len(jobs))
	}
	for _, j := range jobs {
		if j.Phase != runner.PhaseSucceeded || !j.FinishedAt.Equal(time.Unix(100, 0)) {
			t.Fatalf("record %+v: the last Put must win", j)
		}
	}
	if doc, _ := s2.Item("item-001"); string(doc) != `{"name":"item-001"}` {
		t.Fatalf("item document of item-001 = %q", doc)
	}
	if doc, _ := s2.Item("item-000"); doc != nil {
		t.Fatalf("deleted item document still there: %q", doc)
	}
	if doc, _ := s2.Item("item-099"); doc != nil {
		t.Fatalf("Delete left the item document: %q", doc)
	}
}

func BenchmarkPutSync(b *testing.B) {
	for _, fsync := range []bool{true, false} {
		b.Run(fmt.Sprintf("fsync=%v", fsync), func(b *testing.B) {
			s, err := store.Open(b.TempDir(), store.Options{NoSync: !fsync})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					s.Put(runner.Job{Item: fmt.Sprintf("item-%d-%p", i, pb), Phase: runner.PhaseSucceeded})
					if err := s.Sync(context.Background()); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
