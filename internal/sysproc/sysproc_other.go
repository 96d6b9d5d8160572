//go:build !linux && !windows

// Package sysproc holds the one piece of process handling that differs by
// operating system: how a child is tied to the process that starts it.
package sysproc

import (
	"syscall"
	"time"
)

// Child is the SysProcAttr of a child process: in a process group of its own
// when newGroup. Without Pdeathsig (Linux only) a child outlives this
// process if it dies by SIGKILL (docs/development.md).
func Child(newGroup bool, _ syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: newGroup}
}

// GroupsIn finds nothing here: it reads /proc (Linux).
func GroupsIn(string, func(string) bool) []int { return nil }

// StopGroups has nothing to stop here (GroupsIn finds nothing).
func StopGroups([]int, time.Duration) bool { return true }
