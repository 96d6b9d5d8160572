// Package httpapi holds what itemq's echo servers (the ambassadors' item API
// and the manager's status API) share: every error answered as an
// itemapi.Status document with the HTTP code of its reason.
package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/itemq/itemq/itemapi"
)

// ToStatus converts any error to a Status document: a Status is kept, an
// echo.HTTPError (no route, wrong method) maps by its code, and other errors
// by their reason (itemapi.ReasonOf), Internal when they have none.
func ToStatus(err error) *itemapi.Status {
	var st *itemapi.Status
	if errors.As(err, &st) {
		return st
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg := strings.ToLower(http.StatusText(he.Code))
		if m, ok := he.Message.(string); ok && m != "" && m != http.StatusText(he.Code) {
			msg = m
		}
		return itemapi.NewStatus(itemapi.ReasonForCode(he.Code), "%s", msg)
	}
	r := itemapi.ReasonOf(err)
	if r == "" {
		r = itemapi.ReasonInternal
	}
	return itemapi.NewStatus(r, "%s", err.Error())
}

// ErrorHandler answers errors with Status documents, logging server errors.
func ErrorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		st := ToStatus(err)
		if st.Code >= 500 {
			log.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.EscapedPath(), "err", err)
		}
		setStatusHeaders(c.Response().Header(), st)
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(st.Code)
			return
		}
		_ = c.JSON(st.Code, st)
	}
}

// New returns an echo instance with itemq's defaults: no banner, Status
// errors.
func New(log *slog.Logger) *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = ErrorHandler(log)
	return e
}
