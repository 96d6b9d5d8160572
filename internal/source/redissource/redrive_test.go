package redissource

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/itemq/itemq/internal/testutil/redisserver"
	"github.com/itemq/itemq/itemapi"
)

// deadEntry adds a dead-letter entry as dlStream writes it.
func deadEntry(t *testing.T, c *redis.Client, s, dead, id string, own ...string) {
	t.Helper()
	vals := append([]string{FieldStream, s, FieldID, id, FieldReason, "test", FieldGroup, "itemq", FieldConsumer, "c0"}, own...)
	if err := c.XAdd(context.Background(), &redis.XAddArgs{Stream: dead, Values: vals}).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestRedriveStreamDeadLetter: the entry is found behind more than one page
// of the dead-letter stream; an entry that kept no fields of its own is a
// Conflict and stays; names of streams and lists not read are NotFound.
func TestRedriveStreamDeadLetter(t *testing.T) {
	srv := redisserver.Start(t, redisserver.Options{})
	c := srv.Client(t)
	ctx := context.Background()
	cfg := testConfig(srv)
	cfg.Streams = []string{key("rs")}
	cfg.JSONField = "data"
	d := open(t, cfg)
	s := cfg.Streams[0]
	dead := d.DeadLetterKey(s)
	deadEntry(t, c, s, dead, "1-1", "data", `{"n":1}`)
	for i := 0; i < deadPage+20; i++ {
		deadEntry(t, c, s, dead, fmt.Sprintf("2-%d", i), "data", `{}`)
	}
	deadEntry(t, c, s, dead, "3-1")

	newName, err := d.Redrive(ctx, s+"/1-1")
	if err != nil {
		t.Fatalf("Redrive of the oldest dead entry: %v", err)
	}
	eventually(t, "redriven entry read", func() error {
		data, err := d.Get(ctx, newName)
		if err != nil {
			return err
		}
		if string(data) != `{"n":1}` {
			return fmt.Errorf("data %s", data)
		}
		return nil
	})
	if n := c.XLen(ctx, dead).Val(); n != deadPage+21 {
		t.Fatalf("dead-letter stream holds %d entries, want %d", n, deadPage+21)
	}
	if _, err := d.Redrive(ctx, s+"/3-1"); itemapi.ReasonOf(err) != itemapi.ReasonConflict {
		t.Fatalf("Redrive of an entry without fields: got %v, want Conflict", err)
	}
	for _, name := range []string{"other/1-1", s + "/9-9", "nokey"} {
		if _, err := d.Redrive(ctx, name); !itemapi.IsNotFound(err) {
			t.Fatalf("Redrive(%q): got %v, want NotFound", name, err)
		}
	}
}

// TestRedriveListNames: a failed value is recorded under its number beside
// the dead-letter list (which keeps holding plain values), and Redrive
// takes it out of both.
func TestRedriveListNames(t *testing.T) {
	srv := redisserver.Start(t, redisserver.Options{})
	c := srv.Client(t)
	ctx := context.Background()
	cfg := testConfig(srv)
	cfg.Lists = []string{key("rl")}
	d := open(t, cfg)
	l := cfg.Lists[0]
	if err := c.RPush(ctx, l, `{"x":1}`).Err(); err != nil {
		t.Fatal(err)
	}
	var name string
	eventually(t, "value read", func() error {
		if names := listed(t, d); len(names) == 1 {
			name = names[0]
			return nil
		}
		return fmt.Errorf("not yet")
	})
	if err := d.Ack(ctx, name, itemapi.Failed); err != nil {
		t.Fatal(err)
	}
	if got := c.LRange(ctx, d.DeadLetterKey(l), 0, -1).Val(); len(got) != 1 || got[0] != `{"x":1}` {
		t.Fatalf("dead-letter list %q", got)
	}
	num, _ := splitNumber(name)
	if v := c.HGet(ctx, d.DeadLetterNamesKey(l), num).Val(); v != `{"x":1}` {
		t.Fatalf("names hash holds %q under %s", v, num)
	}
	newName, err := d.Redrive(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if newName == name {
		t.Fatalf("redriven under the same number: %s", name)
	}
	if n := c.LLen(ctx, d.DeadLetterKey(l)).Val() + c.HLen(ctx, d.DeadLetterNamesKey(l)).Val(); n != 0 {
		t.Fatalf("the dead letter still holds %d elements", n)
	}
	eventually(t, "redriven value read", func() error {
		_, err := d.Get(ctx, newName)
		return err
	})
	if _, err := d.Redrive(ctx, l+"/not-a-number"); !itemapi.IsNotFound(err) {
		t.Fatalf("Redrive of a bad number: got %v, want NotFound", err)
	}
}
