package redissource

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/itemapi"
)

// deadFields is the number of flat field-and-value elements dlStream puts
// before an entry's own fields.
const deadFields = 10

// redriveStream adds the own fields of a dead-letter entry to its stream
// again and deletes the entry, atomically; it answers the new entry id,
// false when the entry is not (or no longer) the item's, and an EMPTY
// error when the entry kept no fields of its own.
var redriveStream = redis.NewScript(`
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #e == 0 then return false end
local f = e[1][2]
if f[1] ~= 'itemq-stream' or f[2] ~= KEYS[2] or f[3] ~= 'itemq-id' or f[4] ~= ARGV[2] then return false end
if #f <= 10 then return redis.error_reply('EMPTY the dead-letter entry kept no fields of the item') end
local args = {'XADD', KEYS[2], '*'}
for i = 11, #f do args[#args+1] = f[i] end
local id = redis.call(unpack(args))
redis.call('XDEL', KEYS[1], ARGV[1])
return id
`)

// redriveList takes a dead-lettered value by its number out of the
// dead-letter list and its names hash and pushes it to the list again,
// tagged with a new number, which it answers (false when the dead letter
// does not hold it).
var redriveList = redis.NewScript(`
local v = redis.call('HGET', KEYS[3], ARGV[1])
if not v then return false end
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('LREM', KEYS[2], -1, v) == 0 then return false end
local n = redis.call('INCR', KEYS[4])
redis.call('RPUSH', KEYS[1], 'itemq1:' .. n .. ':' .. v)
return n
`)

// Redrive puts a dead-lettered entry or value back as new work: a stream
// entry is added to its stream again (the new name has the new entry id)
// and deleted from the dead-letter stream; a list value is pushed to its
// list again with a new number, and removed from the dead-letter list and
// its names hash. Each is one script. The old name is then no longer in
// the dead letter (a second Redrive is a NotFound).
func (d *Driver) Redrive(ctx context.Context, name string) (string, error) {
	key, id := splitName(name)
	stream, ok := d.streams[key]
	if !ok {
		return "", notDead(name)
	}
	if stream {
		return d.redriveEntry(ctx, name, key, id)
	}
	return d.redriveValue(ctx, name, key)
}

func notDead(name string) error {
	return source.Errorf(itemapi.ReasonNotFound, "redrive: the dead letter holds no item %q", name)
}

func (d *Driver) redriveEntry(ctx context.Context, name, s, id string) (string, error) {
	dead := d.DeadLetterKey(s)
	deadID, err := d.findDead(ctx, dead, s, id)
	if err != nil {
		return "", err
	}
	if deadID == "" {
		return "", notDead(name)
	}
	newID, err := redriveStream.Run(ctx, d.rdb, []string{dead, s}, deadID, id).Text()
	switch {
	case errors.Is(err, redis.Nil):
		return "", notDead(name) // redriven by someone else meanwhile
	case err != nil && strings.HasPrefix(err.Error(), "EMPTY"):
		return "", source.Errorf(itemapi.ReasonConflict, "redrive %s: %v (dead-letter entry %s of %s)", name, err, deadID, dead)
	case err != nil:
		return "", redisError(fmt.Errorf("redrive %s from %s: %w", name, dead, d.explain(err, s)))
	}
	newName := s + "/" + newID
	d.log.Info("redriven", "item", name, "as", newName, "dead_letter", dead)
	return newName, nil
}

// deadPage is how many dead-letter entries one XREVRANGE reads.
const deadPage = 500

// findDead looks for the dead-letter entry of the stream entry id, newest
// first (the recently failed are redriven most), and answers its id in the
// dead-letter stream, or "".
func (d *Driver) findDead(ctx context.Context, dead, s, id string) (string, error) {
	end := "+"
	for {
		page, err := d.rdb.XRevRangeN(ctx, dead, end, "-", deadPage).Result()
		if err != nil {
			return "", redisError(fmt.Errorf("XREVRANGE %s: %w", dead, d.explain(err, s)))
		}
		for _, m := range page {
			if m.Values[FieldID] == id && m.Values[FieldStream] == s {
				return m.ID, nil
			}
		}
		if len(page) < deadPage {
			return "", nil
		}
		end = "(" + page[len(page)-1].ID
	}
}

func (d *Driver) redriveValue(ctx context.Context, name, l string) (string, error) {
	num, ok := splitNumber(name)
	if !ok {
		return "", notDead(name)
	}
	keys := []string{l, d.DeadLetterKey(l), d.DeadLetterNamesKey(l), seqKey(l)}
	n, err := redriveList.Run(ctx, d.rdb, keys, num).Uint64()
	if errors.Is(err, redis.Nil) {
		return "", notDead(name)
	}
	if err != nil {
		return "", redisError(fmt.Errorf("redrive %s from %s: %w", name, d.DeadLetterKey(l), d.explain(err, l)))
	}
	newName := listName(l, n)
	d.log.Info("redriven", "item", name, "as", newName, "dead_letter", d.DeadLetterKey(l))
	return newName, nil
}

// splitNumber is the number of a list item's name, as the text it has in
// the dead letter's names hash.
func splitNumber(name string) (string, bool) {
	_, num := splitName(name)
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return "", false
	}
	return strconv.FormatUint(n, 10), true
}
