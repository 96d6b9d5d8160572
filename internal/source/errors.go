package source

import (
	"errors"
	"fmt"

	"github.com/itemq/itemq/itemapi"
)

// Error is an error of a Source operation, classified by Reason.
type Error struct {
	Op     string // list, get, watch, submit, ack, ready
	Name   string // the item, when there is one
	Reason itemapi.Reason
	Err    error
}

func (e *Error) Error() string {
	var prefix string
	switch {
	case e.Op != "" && e.Name != "":
		prefix = fmt.Sprintf("%s %q: ", e.Op, e.Name)
	case e.Op != "":
		prefix = e.Op + ": "
	case e.Name != "":
		prefix = fmt.Sprintf("%q: ", e.Name)
	}
	return prefix + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorReason makes Error an itemapi.Reasoner.
func (e *Error) ErrorReason() itemapi.Reason { return e.Reason }

// Errorf returns an error with a reason, for drivers to return.
func Errorf(reason itemapi.Reason, format string, args ...any) error {
	return &Error{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// NotFound is the error drivers return for an item that is not there.
func NotFound(name string) error {
	return &Error{Name: name, Reason: itemapi.ReasonNotFound, Err: errNotFound}
}

var errNotFound = errors.New("no such item")
