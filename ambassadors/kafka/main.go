// Command itemq-kafka is the Kafka ambassador: it serves the v1 item API over
// the messages of Kafka topics, consumed in a consumer group; acknowledging an
// item commits its offset (at-least-once). Configured by ITEMQ_* and KAFKA_*
// environment variables; see docs/kafka.md.
package main

import (
	"github.com/itemq/itemq/internal/ambassador"
	"github.com/itemq/itemq/internal/source/kafkasource"
)

func main() { ambassador.Main("itemq-kafka", kafkasource.Open) }
