// Command promcheck checks itemq's Prometheus rule files and Grafana
// dashboards with Prometheus's own parsers, and prints the metric names they
// use. It is a module of its own (hack/promcheck/go.mod), built by
// hack/deps/56-promcheck.sh into the cache, so Prometheus is not a dependency
// of itemq.
//
//	promcheck rules FILE...      like `promtool check rules`: the rule file
//	                             format (unknown fields are errors), every
//	                             expression and template, duplicate rules
//	promcheck dashboard FILE...  every PromQL expression of a Grafana dashboard
//	                             (panels, rows, variables' label_values), with
//	                             $__rate_interval and other variables replaced
//
// On success it prints one JSON document: {"rules":N,"expressions":N,"metrics":[...]}.
// On failure it prints the errors and exits 1.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

type result struct {
	Rules       int      `json:"rules"`
	Expressions int      `json:"expressions"`
	Metrics     []string `json:"metrics"`
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: promcheck rules|dashboard FILE...")
		os.Exit(2)
	}
	p := parser.NewParser(parser.Options{})
	names := map[string]bool{}
	var res result
	var errs []error
	switch os.Args[1] {
	case "rules":
		for _, f := range os.Args[2:] {
			n, e := checkRules(p, f, names)
			res.Rules += n
			res.Expressions += n
			errs = append(errs, e...)
		}
	case "dashboard":
		for _, f := range os.Args[2:] {
			n, e := checkDashboard(p, f, names)
			res.Expressions += n
			errs = append(errs, e...)
		}
	default:
		fmt.Fprintf(os.Stderr, "promcheck: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintln(os.Stderr, e)
		}
		os.Exit(1)
	}
	for n := range names {
		res.Metrics = append(res.Metrics, n)
	}
	sort.Strings(res.Metrics)
	res.Metrics = append([]string{}, res.Metrics...)
	_ = json.NewEncoder(os.Stdout).Encode(res)
}

func checkRules(p parser.Parser, file string, names map[string]bool) (int, []error) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	rgs, errs := rulefmt.ParseFile(file, false, model.UTF8Validation, p, logger)
	if len(errs) > 0 {
		return 0, errs
	}
	n := 0
	seen := map[string]bool{}
	for _, g := range rgs.Groups {
		if len(g.Rules) == 0 {
			errs = append(errs, fmt.Errorf("%s: group %q has no rules", file, g.Name))
		}
		for _, r := range g.Rules {
			n++
			key := g.Name + "\x00" + r.Alert + "\x00" + r.Record + "\x00" + fmt.Sprint(r.Labels) + "\x00" + r.Expr
			if seen[key] {
				errs = append(errs, fmt.Errorf("%s: duplicate rule %s%s in group %q", file, r.Alert, r.Record, g.Name))
			}
			seen[key] = true
			if err := collect(p, r.Expr, names); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s%s: %w", file, r.Alert, r.Record, err))
			}
		}
	}
	return n, errs
}

var (
	rateInterval = regexp.MustCompile(`\$__(rate_)?interval|\$__range`)
	variable     = regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*(:[a-z]+)?\}?`)
	labelValues  = regexp.MustCompile(`^\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$`)
)

// grafanaExpr replaces Grafana's variables so that the parser sees PromQL.
func grafanaExpr(s string) string {
	s = rateInterval.ReplaceAllString(s, "5m")
	return variable.ReplaceAllString(s, "x")
}

func checkDashboard(p parser.Parser, file string, names map[string]bool) (int, []error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return 0, []error{err}
	}
	var d struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return 0, []error{fmt.Errorf("%s: %w", file, err)}
	}
	var errs []error
	n := 0
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, pn := range ps {
			walk(pn.Panels)
			for _, t := range pn.Targets {
				if strings.TrimSpace(t.Expr) == "" {
					continue
				}
				n++
				if err := collect(p, grafanaExpr(t.Expr), names); err != nil {
					errs = append(errs, fmt.Errorf("%s: panel %q, target %s: %w", file, pn.Title, t.RefID, err))
				}
			}
		}
	}
	walk(d.Panels)
	if len(d.Panels) == 0 {
		errs = append(errs, fmt.Errorf("%s: no panels", file))
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		var s string
		if json.Unmarshal(v.Query, &s) != nil {
			_ = json.Unmarshal(v.Query, &q)
			s = q.Query
		}
		m := labelValues.FindStringSubmatch(s)
		if m == nil {
			errs = append(errs, fmt.Errorf("%s: variable %s: want label_values(<selector>, <label>), got %q", file, v.Name, s))
			continue
		}
		n++
		if err := collect(p, grafanaExpr(m[1]), names); err != nil {
			errs = append(errs, fmt.Errorf("%s: variable %s: %w", file, v.Name, err))
		}
	}
	return n, errs
}

type panel struct {
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// collect parses expr and records the metric name of every selector.
func collect(p parser.Parser, expr string, names map[string]bool) error {
	e, err := p.ParseExpr(expr)
	if err != nil {
		return err
	}
	var missing error
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			if vs.Name == "" {
				missing = fmt.Errorf("a selector without a metric name: %s", vs)
			}
			names[vs.Name] = true
		}
		return nil
	})
	return missing
}
