package bucket

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestKinds(t *testing.T) {
	nf := Errorf(NotFound, "no such object %q", "k")
	if KindOf(nf) != NotFound || nf.Error() != `no such object "k"` {
		t.Fatalf("Errorf: %v (kind %s)", nf, KindOf(nf))
	}
	wrapped := fmt.Errorf("fetch: %w", nf)
	if KindOf(wrapped) != NotFound {
		t.Fatalf("a wrapped error lost its kind: %s", KindOf(wrapped))
	}
	if KindOf(Classify(Permanent, wrapped)) != NotFound {
		t.Fatal("Classify changed the kind of a classified error")
	}
	if KindOf(Classify(Permanent, errors.New("x"))) != Permanent || Classify(Permanent, nil) != nil {
		t.Fatal("Classify")
	}
	if KindOf(context.Canceled) != Transient || KindOf(errors.New("x")) != Transient {
		t.Fatal("unclassified errors are Transient")
	}
	if !errors.Is(Classify(Transient, context.Canceled), context.Canceled) {
		t.Fatal("Classify hides the wrapped error")
	}
}

func TestRedactURL(t *testing.T) {
	got := RedactURL("https://user:pw@h/p?X-Amz-Signature=abc&a=1&sig=s3cr3t")
	if strings.Contains(got, "abc") || strings.Contains(got, "pw") || strings.Contains(got, "s3cr3t") || !strings.Contains(got, "a=1") {
		t.Fatalf("RedactURL = %q", got)
	}
	if got := RedactURL("s3://b?region=eu-west-1"); got != "s3://b?region=eu-west-1" {
		t.Fatalf("RedactURL changed a URL without secrets: %q", got)
	}
}
