// Command sim runs the scaling simulator (internal/sim) over every workload
// and controller and writes the results table and plots that
// docs/scaling.md shows (make sim).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/itemq/itemq/internal/sim"
)

func main() {
	size := flag.Float64("size", 1, "the workloads' length: 1 is hours of arrivals and a day of the diurnal ramp")
	seeds := flag.Int("seeds", 3, "runs per workload and controller (seeds 1..n), averaged")
	out := flag.String("out", "docs/scaling", "where results.md and the plots go")
	flag.Parse()
	if err := run(*size, *seeds, *out); err != nil {
		fmt.Fprintln(os.Stderr, "sim:", err)
		os.Exit(1)
	}
}

func run(size float64, n int, out string) error {
	if size <= 0 || n < 1 {
		return fmt.Errorf("-size %v -seeds %d: want a positive size and at least one seed", size, n)
	}
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = uint64(i + 1)
	}
	ws := sim.Workloads(size)
	table := sim.Table(ws, seeds)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(out, "results.md"))
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "<!-- written by `make sim` (go run ./hack/sim -size %v -seeds %d); do not edit -->\n# Scaling simulator: results\n\nWhat the figures mean: [docs/scaling.md](../scaling.md).\n", size, n)
	if err := sim.WriteMarkdown(f, ws, table, n); err != nil {
		f.Close()
		return err
	}
	if err := sim.WriteFairMarkdown(f, sim.FairWorkloads(size)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	plots := map[string][]string{"burst-1000": {"itemq", "itemq-pool", "keda-default", "keda-eager", "hpa", "rq-autoscaler"},
		"diurnal-10x":     {"itemq", "itemq-pool-tw", "keda-default", "hpa", "rq-autoscaler"},
		"pod-start-1-30s": {"itemq", "itemq-pool", "itemq-pool-tw", "keda-default", "hpa"}}
	for i, w := range ws {
		names, ok := plots[w.Name]
		if !ok {
			continue
		}
		f, err := os.Create(filepath.Join(out, w.Name+".svg"))
		if err != nil {
			return err
		}
		err = sim.WriteSVG(f, "pods over time: "+w.Name+" (seed 1)", table[i], names)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	fmt.Printf("wrote %s/results.md and its plots\n", out)
	return nil
}
