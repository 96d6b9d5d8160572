package managercmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseSteps: MANAGER_COMMAND and MANAGER_STEPS either give commands
// that can be started (each a non-empty argv whose program is named, no
// NUL anywhere: exec refuses it at every start) or an error that names the
// setting.
func FuzzParseSteps(f *testing.F) {
	for _, s := range [][2]string{
		{"bin/itemq-thumbnail", ""}, {`["bin/itemq-script","--","./my script.sh"]`, ""}, {"", `[["a"], "b -- c"]`},
		{"", `[]`}, {"", `[[]]`}, {"", `[[""]]`}, {`[1]`, ""}, {"  ", ""}, {"a", `["b"]`}, {`[""]`, ""}, {"", `["", "x"]`},
		{"a\x00b", ""}, {`["a\u0000"]`, ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, command, steps string) {
		got, err := parseSteps(command, steps)
		if err != nil {
			if !strings.Contains(err.Error(), "MANAGER_COMMAND") && !strings.Contains(err.Error(), "MANAGER_STEPS") {
				t.Fatalf("error %q does not name the setting", err)
			}
			return
		}
		if command == "" && steps == "" {
			if got != nil {
				t.Fatalf("nothing set, got %q", got)
			}
			return
		}
		if len(got) == 0 {
			t.Fatalf("%q %q: no command and no error", command, steps)
		}
		for i, argv := range got {
			if len(argv) == 0 || strings.TrimSpace(argv[0]) == "" {
				t.Fatalf("%q %q: step %d is %q", command, steps, i, argv)
			}
			for _, a := range argv {
				if strings.ContainsRune(a, 0) {
					t.Fatalf("%q %q: step %d has a NUL: %q", command, steps, i, argv)
				}
			}
		}
	})
}

// FuzzReadEnvFile: a MANAGER_JOB_ENV_FILE either gives variables that can
// be put into an executor's environment as they are (a key without "=",
// blanks or control characters; a value without NUL or a line break) or an
// error that names the file. (Seeds #5 and #6 found NUL accepted: every
// job of the queue would then have failed to start.)
func FuzzReadEnvFile(f *testing.F) {
	for _, s := range []string{
		"A=1\n", "# c\nexport B='x y'\n\nC=\"q\"\n", "=x\n", "A B=1\n", "noequals\n", "A=\x00\n", "A\x00=1\n",
		"export =1\n", "A='unterminated\n", "\r\nA=1\r\n", "A==\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "job.env")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		env, err := readEnvFile(p)
		if err != nil {
			if !strings.Contains(err.Error(), "MANAGER_JOB_ENV_FILE") {
				t.Fatalf("error %q does not name the setting", err)
			}
			return
		}
		for k, v := range env {
			if k == "" || strings.ContainsAny(k, "= \t\r\n\x00") || strings.ContainsAny(v, "\n\x00") {
				t.Fatalf("%q gave %q=%q", b, k, v)
			}
		}
	})
}
