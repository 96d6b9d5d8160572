package itemapi

import (
	"fmt"
	"net/http"
)

// Reason classifies an error of the contract. Each has one HTTP code.
type Reason string

const (
	ReasonBadRequest       Reason = "BadRequest"
	ReasonNotFound         Reason = "NotFound"
	ReasonMethodNotAllowed Reason = "MethodNotAllowed"
	ReasonConflict         Reason = "Conflict"
	ReasonTooLarge         Reason = "TooLarge"
	ReasonUnavailable      Reason = "Unavailable"
	ReasonInternal         Reason = "Internal"
	// ReasonUnauthorized and ReasonForbidden are used by services that take a
	// bearer token (the manager's status API).
	ReasonUnauthorized Reason = "Unauthorized"
	ReasonForbidden    Reason = "Forbidden"
)

// HTTPCode is the HTTP status code of a reason.
func (r Reason) HTTPCode() int {
	switch r {
	case ReasonBadRequest:
		return http.StatusBadRequest
	case ReasonNotFound:
		return http.StatusNotFound
	case ReasonMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case ReasonConflict:
		return http.StatusConflict
	case ReasonTooLarge:
		return http.StatusRequestEntityTooLarge
	case ReasonUnavailable:
		return http.StatusServiceUnavailable
	case ReasonUnauthorized:
		return http.StatusUnauthorized
	case ReasonForbidden:
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

// ReasonForCode maps an HTTP status code to a reason (for answers that carry
// no Status document, e.g. from a third-party server or a proxy).
func ReasonForCode(code int) Reason {
	switch code {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return ReasonBadRequest
	case http.StatusNotFound, http.StatusGone:
		return ReasonNotFound
	case http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return ReasonMethodNotAllowed
	case http.StatusConflict:
		return ReasonConflict
	case http.StatusRequestEntityTooLarge:
		return ReasonTooLarge
	case http.StatusUnauthorized:
		return ReasonUnauthorized
	case http.StatusForbidden:
		return ReasonForbidden
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout, http.StatusTooManyRequests:
		return ReasonUnavailable
	}
	return ReasonInternal
}

// Status is the error document of the contract. It is also a Go error, so
// the client returns it and servers can return it from handlers.
type Status struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Code       int    `json:"code"`
	Reason     Reason `json:"reason"`
	Message    string `json:"message"`
}

// NewStatus returns a Status error with the code of its reason.
func NewStatus(reason Reason, format string, args ...any) *Status {
	return &Status{
		Kind: KindStatus, APIVersion: APIVersion,
		Code: reason.HTTPCode(), Reason: reason, Message: fmt.Sprintf(format, args...),
	}
}

func (s *Status) Error() string {
	if s.Message == "" {
		return string(s.Reason)
	}
	return fmt.Sprintf("%s: %s", s.Reason, s.Message)
}

// Reasoner is implemented by errors that carry a Reason without being a
// Status (for instance the errors of itemq's source drivers).
type Reasoner interface {
	ErrorReason() Reason
}

// ReasonOf returns the reason of the first Status or Reasoner in err's
// chain, or "" when there is none.
func ReasonOf(err error) Reason {
	for e := err; e != nil; {
		switch v := e.(type) {
		case *Status:
			return v.Reason
		case Reasoner:
			return v.ErrorReason()
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			e = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, inner := range u.Unwrap() {
				if r := ReasonOf(inner); r != "" {
					return r
				}
			}
			return ""
		default:
			return ""
		}
	}
	return ""
}

// IsNotFound reports whether err says the item (or route) does not exist.
func IsNotFound(err error) bool { return ReasonOf(err) == ReasonNotFound }

// IsBadRequest reports whether err says the request (e.g. a name) is invalid.
func IsBadRequest(err error) bool { return ReasonOf(err) == ReasonBadRequest }

// IsMethodNotAllowed reports whether err says the source does not support the
// operation (e.g. POST or DELETE on a source that cannot submit or archive).
func IsMethodNotAllowed(err error) bool { return ReasonOf(err) == ReasonMethodNotAllowed }

// IsConflict reports whether err is a conflict.
func IsConflict(err error) bool { return ReasonOf(err) == ReasonConflict }

// IsTooLarge reports whether err says a body was over the size limit.
func IsTooLarge(err error) bool { return ReasonOf(err) == ReasonTooLarge }

// IsUnavailable reports whether err says the source is (for now) unreachable.
func IsUnavailable(err error) bool { return ReasonOf(err) == ReasonUnavailable }

// IsUnauthorized reports whether err says a token is missing or wrong.
func IsUnauthorized(err error) bool {
	r := ReasonOf(err)
	return r == ReasonUnauthorized || r == ReasonForbidden
}
