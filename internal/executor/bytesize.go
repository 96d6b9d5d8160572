package executor

import (
	"fmt"
	"strconv"
	"strings"
)

// ByteSize is a number of bytes read from the environment as an integer
// with an optional unit: 1048576, 512KiB, 10GiB, 5MB (KB, MB, GB, TB are
// powers of 1000; KiB, MiB, GiB, TiB powers of 1024).
type ByteSize int64

// UnmarshalText parses a size.
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	mult := int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || (mult > 1 && n > (1<<63-1)/mult) {
		return fmt.Errorf("size %q: want a number of bytes, optionally with KiB, MiB, GiB, TiB, KB, MB, GB or TB", string(text))
	}
	*b = ByteSize(n * mult)
	return nil
}
