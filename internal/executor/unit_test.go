package executor

import (
	"strings"
	"testing"
)

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{"10": 10, "1KiB": 1024, "10GiB": 10 << 30, "5MB": 5e6, " 2 MiB ": 2 << 20, "7B": 7} {
		var b ByteSize
		if err := b.UnmarshalText([]byte(in)); err != nil || int64(b) != want {
			t.Errorf("%q: %d, %v; want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "1XB", "99999999999TiB"} {
		var b ByteSize
		if err := b.UnmarshalText([]byte(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestSafeFileName(t *testing.T) {
	for in, want := range map[string]string{
		"clips/a b.mp4": "a_b.mp4", "..": "input", "/": "input", "x/.hidden": "hidden", "é.mov": "__.mov",
		`a\b.mp4`: "b.mp4", "": "input",
	} {
		if got := SafeFileName(in); got != want {
			t.Errorf("SafeFileName(%q) = %q, want %q", in, got, want)
		}
	}
	if got := SafeFileName(strings.Repeat("a", 300) + ".mp4"); len(got) != 200 || !strings.HasSuffix(got, ".mp4") {
		t.Errorf("long name: %q", got)
	}
}

func TestSetEnv(t *testing.T) {
	got := setEnv([]string{"A=1", "INPUT_FILE=old", "B=2"}, "INPUT_FILE", "", "C", "3")
	want := "A=1 B=2 INPUT_FILE= C=3"
	if strings.Join(got, " ") != want {
		t.Fatalf("setEnv = %v, want %s", got, want)
	}
}

func TestOneLine(t *testing.T) {
	if got := oneLine("a\n\n b \r\nc\n"); got != "a | b | c" {
		t.Fatalf("oneLine = %q", got)
	}
}
