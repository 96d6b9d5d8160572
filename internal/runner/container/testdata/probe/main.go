// Command probe is the executor (or the user's script under itemq-script)
// of the container runner's tests. It is static, so it runs in a FROM scratch
// image. It reads the item file (WORK_ITEM_FILE) and acts on the item's data:
//
//	{"exit": 3}             exit with this code
//	{"waitFor": "/runs/go"} wait until this file exists
//	{"sleepMs": 500}        sleep first
//	{"printEnv": true}      print the environment on stdout, one "env NAME=VALUE" a line
//
// Each start and each completion is appended to $PROBE_LOG as
// "start <item> <seen>" and "done <item>", where seen is "yes" when
// $OUT_ROOT/<item>/_SUCCESS.json already existed. With OUTPUT_DIR, it writes
// OUTPUT_DIR/out.txt: the item name, or (with INPUT_DIR) INPUT_DIR/out.txt
// followed by "+step$ITEMQ_STEP". It prints the item document on stdout and
// "uid=<uid> env=<WORK_ITEM_FILE>" on stderr.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

func main() {
	doc, err := os.ReadFile(os.Getenv("WORK_ITEM_FILE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(2)
	}
	var it struct {
		Name string `json:"name"`
		Data struct {
			Exit     int    `json:"exit"`
			WaitFor  string `json:"waitFor"`
			SleepMs  int    `json:"sleepMs"`
			PrintEnv bool   `json:"printEnv"`
		} `json:"data"`
	}
	if err := json.Unmarshal(doc, &it); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(2)
	}
	seen := "no"
	if root := os.Getenv("OUT_ROOT"); root != "" {
		if _, err := os.Stat(filepath.Join(root, it.Name, "_SUCCESS.json")); err == nil {
			seen = "yes"
		}
	}
	record(fmt.Sprintf("start %s %s", it.Name, seen))
	if it.Data.PrintEnv {
		for _, kv := range os.Environ() {
			fmt.Printf("env %s\n", kv)
		}
	}
	fmt.Printf("%s\n", doc)
	fmt.Fprintf(os.Stderr, "uid=%d env=%s\n", os.Getuid(), os.Getenv("WORK_ITEM_FILE"))
	time.Sleep(time.Duration(it.Data.SleepMs) * time.Millisecond)
	for it.Data.WaitFor != "" {
		if _, err := os.Stat(it.Data.WaitFor); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out := os.Getenv("OUTPUT_DIR"); out != "" {
		content := it.Name
		if in := os.Getenv("INPUT_DIR"); in != "" {
			b, err := os.ReadFile(filepath.Join(in, "out.txt"))
			if err != nil {
				fmt.Fprintln(os.Stderr, "probe:", err)
				os.Exit(1)
			}
			content = string(b) + "+step" + os.Getenv("ITEMQ_STEP")
		}
		if err := os.MkdirAll(out, 0o755); err == nil {
			err = os.WriteFile(filepath.Join(out, "out.txt"), []byte(content), 0o644)
		}
		fmt.Fprintf(os.Stderr, "out=%s\n", content)
		if err != nil {
			fmt.Fprintln(os.Stderr, "probe:", err)
			os.Exit(1)
		}
	}
	if it.Data.Exit == 0 {
		record("done " + it.Name)
	}
	os.Exit(it.Data.Exit)
}

func record(line string) {
	p := os.Getenv("PROBE_LOG")
	if p == "" {
		return
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o666)
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}
