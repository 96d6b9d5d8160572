package source_test

import (
	"testing"

	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/itemapi"
)

// FuzzContinueToken: a token is accepted only when it is exactly what
// EncodeContinue made for a valid name; every name round-trips.
func FuzzContinueToken(f *testing.F) {
	for _, s := range []string{"", "zzzz", "YQ", "%%%", "AAAAAAAA", source.EncodeContinue("a"), source.EncodeContinue("a/b c"), source.EncodeContinue("ü"), "YWJj", "////"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		name, err := source.DecodeContinue(token)
		if err != nil {
			if !itemapi.IsBadRequest(err) {
				t.Fatalf("DecodeContinue(%q): %v is not a BadRequest", token, err)
			}
		} else if token != "" {
			if itemapi.ValidateName(name) != nil {
				t.Fatalf("DecodeContinue(%q) = %q, not a valid name", token, name)
			}
			if again := source.EncodeContinue(name); again != token {
				t.Fatalf("DecodeContinue(%q) = %q, which encodes as %q", token, name, again)
			}
		}
		// The input as a name: encoding round-trips.
		if itemapi.ValidateName(token) == nil {
			got, err := source.DecodeContinue(source.EncodeContinue(token))
			if err != nil || got != token {
				t.Fatalf("round trip of %q: %q, %v", token, got, err)
			}
		}
	})
}
