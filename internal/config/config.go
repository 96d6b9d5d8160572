// Package config reads a binary's settings from its environment with
// github.com/caarlos0/env, from an explicit environment (not the process's),
// so that run functions can be tested without touching os.Environ.
package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/caarlos0/env/v11"
)

// ErrInvalid marks configuration errors (errors.Is). Binaries exit with
// code 2 for them, 1 for other failures.
var ErrInvalid = errors.New("invalid configuration")

type invalidError struct{ err error }

func (e invalidError) Error() string   { return e.err.Error() }
func (e invalidError) Unwrap() []error { return []error{e.err, ErrInvalid} }

// Invalid marks err as a configuration error.
func Invalid(err error) error {
	if err == nil || errors.Is(err, ErrInvalid) {
		return err
	}
	return invalidError{err}
}

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
// Errors name the variable, its value and the problem
// (`DIR_SETTLE="soon": time: invalid duration "soon"`).
func Parse(cfg any, environ []string) error {
	vars := Environ(environ)
	err := env.ParseWithOptions(cfg, env.Options{Environment: vars})
	if err == nil {
		return nil
	}
	keys := envKeys(reflect.TypeOf(cfg))
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return Invalid(fmt.Errorf("configuration: %w", err))
	}
	msgs := make([]string, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if key, ok := keys[pe.Name]; ok {
				msgs = append(msgs, fmt.Sprintf("%s=%q: %v", key, vars[key], pe.Err))
				continue
			}
		}
		msgs = append(msgs, e.Error())
	}
	return Invalid(fmt.Errorf("configuration: %s", strings.Join(msgs, "; ")))
}

// envKeys maps the Go field names of a config struct to their variables.
func envKeys(t reflect.Type) map[string]string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	out := map[string]string{}
	if t.Kind() != reflect.Struct {
		return out
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if key, _, _ := strings.Cut(f.Tag.Get("env"), ","); key != "" {
			out[f.Name] = key
		}
		if f.Type.Kind() == reflect.Struct || f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct {
			for k, v := range envKeys(f.Type) {
				if _, dup := out[k]; !dup {
					out[k] = v
				}
			}
		}
	}
	return out
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

// ClientTLS is the TLS configuration of a client from the usual settings
// <prefix>TLS_CA_FILE (PEM roots; empty: the system's), <prefix>TLS_CERT_FILE
// and <prefix>TLS_KEY_FILE (a client certificate) and
// <prefix>TLS_INSECURE_SKIP_VERIFY; errors name the setting at fault.
func ClientTLS(prefix, caFile, certFile, keyFile string, insecure bool) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure} //nolint:gosec // opt-in by <prefix>TLS_INSECURE_SKIP_VERIFY
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("%sTLS_CA_FILE: %w", prefix, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%sTLS_CA_FILE=%s: no PEM certificate in it", prefix, caFile)
		}
		tc.RootCAs = pool
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("%sTLS_CERT_FILE/%sTLS_KEY_FILE: %w", prefix, prefix, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
