// Package sysproc holds the one piece of process handling that differs by
// operating system: how a child is tied to the process that starts it.
package sysproc

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Child is the SysProcAttr of a child process: in a process group of its own
// when newGroup (so that it and its children can be signalled together), and
// sent sig when this process dies, even by SIGKILL (Pdeathsig: Linux only,
// and tied to the OS thread that starts the child, so the caller keeps its
// goroutine on that thread until the child is reaped when it matters).
func Child(newGroup bool, sig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: newGroup, Pdeathsig: sig}
}

// GroupsIn lists the process groups of the processes whose working
// directory is dir/<name> (or below it) for a name that match accepts:
// what attempts run from their directories under a manager's work dir.
func GroupsIn(dir string, match func(name string) bool) []int {
	dir = filepath.Clean(dir)
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	seen := map[int]bool{}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil {
			continue
		}
		rel, err := filepath.Rel(dir, cwd)
		if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
			continue
		}
		if first, _, _ := strings.Cut(rel, string(filepath.Separator)); !match(first) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp …: comm may hold spaces and parens.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 {
			continue
		}
		if pgrp, err := strconv.Atoi(f[2]); err == nil && pgrp > 1 && !seen[pgrp] {
			seen[pgrp] = true
			out = append(out, pgrp)
		}
	}
	return out
}

// StopGroups stops the process groups: SIGTERM, then SIGKILL to what is
// left after grace. It waits until they are gone (at most 5 s after the
// SIGKILL) and reports whether they are.
func StopGroups(groups []int, grace time.Duration) bool {
	alive := func() bool {
		for _, g := range groups {
			if syscall.Kill(-g, 0) == nil {
				return true
			}
		}
		return false
	}
	waitGone := func(d time.Duration) bool {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if !alive() {
				return true
			}
		}
		return !alive()
	}
	for _, g := range groups {
		_ = syscall.Kill(-g, syscall.SIGTERM)
	}
	if waitGone(grace) {
		return true
	}
	for _, g := range groups {
		_ = syscall.Kill(-g, syscall.SIGKILL)
	}
	return waitGone(5 * time.Second)
}
