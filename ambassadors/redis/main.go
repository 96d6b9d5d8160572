// Command itemq-redis is the Redis ambassador: it serves the v1 item API over
// the entries of Redis streams, read in a consumer group (acknowledging an
// item is XACK), and over the values of Redis lists, consumed with the
// reliable-queue pattern. Configured by ITEMQ_* and REDIS_* environment
// variables; see docs/redis.md.
package main

import (
	"github.com/itemq/itemq/internal/ambassador"
	"github.com/itemq/itemq/internal/source/redissource"
)

func main() { ambassador.Main("itemq-redis", redissource.Open) }
