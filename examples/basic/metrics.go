package main

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// newMetrics wires the OpenTelemetry SDK to a Prometheus registry of this
// app's own (not the global one): the MeterProvider to give bff, the
// handler of GET /metrics, and a shutdown. bff itself depends only on the
// OpenTelemetry API; the SDK and the exporter are this example's choice.
func newMetrics() (*sdkmetric.MeterProvider, http.Handler, func(), error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, nil, nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return mp, h, func() { mp.Shutdown(context.Background()) }, nil
}
