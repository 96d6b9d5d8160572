package ambassador

import (
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes registers every route of the v1 item API and the operational ones.
func (s *server) routes(e *echo.Echo) {
	e.GET("/v1/items", s.handleList)
	e.POST("/v1/items", s.handleSubmit)
	e.GET("/v1/items/*", s.handleGet)
	e.DELETE("/v1/items/*", s.handleAck)
	e.POST("/v1/redrive/*", s.handleRedrive)
	e.GET("/healthz", s.handleHealthz)
	e.GET("/readyz", s.handleReadyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})))
}
