// Package config reads a binary's settings from its environment with
// github.com/caarlos0/env, from an explicit environment (not the process's),
// so that run functions can be tested without touching os.Environ.
package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/caarlos0/env/v11"
)

// Environ maps an os.Environ-style list to a map; later entries win.
func Environ(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			m[k] = v
		}
	}
	return m
}

// Parse fills cfg (a pointer to a struct with `env` tags) from environ.
// Errors name the variable and the problem, one per line.
func Parse(cfg any, environ []string) error {
	err := env.ParseWithOptions(cfg, env.Options{Environment: Environ(environ)})
	if err == nil {
		return nil
	}
	var agg env.AggregateError
	if errors.As(err, &agg) {
		msgs := make([]string, 0, len(agg.Errors))
		for _, e := range agg.Errors {
			msgs = append(msgs, e.Error())
		}
		return fmt.Errorf("configuration: %s", strings.Join(msgs, "; "))
	}
	return fmt.Errorf("configuration: %w", err)
}

// WithPrefix returns the variables of environ whose names start with
// prefix, with the prefix removed (e.g. MANAGER_JOB_ENV_OUTPUT_URL=x gives
// OUTPUT_URL=x for prefix MANAGER_JOB_ENV_).
func WithPrefix(environ []string, prefix string) map[string]string {
	out := map[string]string{}
	for k, v := range Environ(environ) {
		if rest, ok := strings.CutPrefix(k, prefix); ok && rest != "" {
			out[rest] = v
		}
	}
	return out
}
