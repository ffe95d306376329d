// Package telemetrytest tests bff's OpenTelemetry metrics and spans with
// the OpenTelemetry SDK (an in-memory metric reader and span recorder), and
// benchmarks the request path with a real SDK MeterProvider. It is its own
// module so that the SDK never becomes a dependency of the library; it
// reaches bff only through its public API and over HTTP.
package telemetrytest
