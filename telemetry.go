package bff

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/gobff/bff/internal/storage"
)

// telemetry holds bff's OpenTelemetry instruments and tracer, through the
// API only (the application brings the SDK). Without Options.MeterProvider
// and Options.TracerProvider everything is a no-op.
//
// Every attribute value comes from a small fixed set (outcomes, reasons,
// endpoint names, status classes): never a subject, session, token or URL.
// The session cache's counts, the only ones on the request path of a
// signed-in user, are atomics that observable instruments read at
// collection time: a request pays one atomic add for them.
type telemetry struct {
	tracer   trace.Tracer
	tracing  bool // a TracerProvider was set
	metering bool // a MeterProvider was set
	meter    metric.Meter
	reg      metric.Registration // the observable instruments' callback

	login, refresh, ended, backchannel, proxyRequests, providerErrors metric.Int64Counter
	loginDur, refreshDur, proxyDur, providerDur                       metric.Float64Histogram

	cache [cacheResults]atomic.Int64

	discoveryURL string
	prov         *atomic.Pointer[provider]
}

// instrumentationName names bff's meter and tracer.
const instrumentationName = "github.com/gobff/bff"

// w3c propagates trace context to the proxy's upstream and the provider,
// and reads it from an incoming request that has no span in its context.
var w3c = propagation.TraceContext{}

// durationBuckets are the histograms' bucket bounds in seconds: a cached
// request, a provider call over a LAN, one across the world, a timeout.
var durationBuckets = metric.WithExplicitBucketBoundaries(
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

func newTelemetry(cfg *config, prov *atomic.Pointer[provider]) (*telemetry, error) {
	mp := cfg.MeterProvider
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	t := &telemetry{meter: mp.Meter(instrumentationName), metering: cfg.MeterProvider != nil, prov: prov,
		discoveryURL: strings.TrimSuffix(cfg.Issuer, "/") + "/.well-known/openid-configuration"}
	if cfg.TracerProvider != nil {
		t.tracer, t.tracing = cfg.TracerProvider.Tracer(instrumentationName), true
	}
	m := t.meter
	var errs []error
	counter := func(name, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	histogram := func(name, desc string) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithDescription(desc), metric.WithUnit("s"), durationBuckets)
		errs = append(errs, err)
		return h
	}
	t.login = counter("bff.login", "Sign-in callbacks, by outcome: success or the error code.")
	t.loginDur = histogram("bff.login.duration", "Time of sign-in callbacks, split into the provider's part and bff's.")
	t.refresh = counter("bff.refresh", "Token refreshes needed by requests, by outcome.")
	t.refreshDur = histogram("bff.refresh.duration", "Time of token refreshes (lock, grant, verification, write).")
	t.ended = counter("bff.session.ended", "Sessions ended, by reason.")
	t.backchannel = counter("bff.backchannel_logout", "Back-channel logout requests, by outcome.")
	t.proxyRequests = counter("bff.proxy.requests", "Requests through Proxy, by status class.")
	t.proxyDur = histogram("bff.proxy.duration", "Time of requests through Proxy until the response is complete.")
	t.providerErrors = counter("bff.provider.errors", "Calls to the provider that failed (no response, or a 5xx), by endpoint.")
	t.providerDur = histogram("bff.provider.duration", "Time of calls to the provider until the response headers, by endpoint.")
	if err := errors.Join(errs...); err != nil {
		return nil, fieldErr("MeterProvider", "could not create bff's instruments: %v", err)
	}
	return t, nil
}

// attach makes st report to t, and registers the observable instruments
// that read st's state at collection time.
func (t *telemetry) attach(st *sessionStore) error {
	st.tel = t
	m := t.meter
	var errs []error
	gauge := func(name, desc, unit string) metric.Float64ObservableGauge {
		g, err := m.Float64ObservableGauge(name, metric.WithDescription(desc), metric.WithUnit(unit))
		errs = append(errs, err)
		return g
	}
	cache, err := m.Int64ObservableCounter("bff.session_cache", metric.WithDescription(
		"Session lookups of requests, by result: hit, miss, or untrusted (the invalidation channel is unhealthy)."))
	errs = append(errs, err)
	storeErrs, err := m.Int64ObservableCounter("bff.store.errors", metric.WithDescription(
		"Calls to the session store that failed (not counting the caller's own cancellations)."))
	errs = append(errs, err)
	active, err := m.Int64ObservableGauge("bff.session.active", metric.WithDescription(
		"Live sessions in the in-memory store (reported only with the default memory store)."))
	errs = append(errs, err)
	breakerOpen := gauge("bff.store.breaker.open", "1 while the session store's circuit breaker is open, else 0.", "1")
	var healthy, lag metric.Float64ObservableGauge
	if st.bus != nil {
		healthy = gauge("bff.invalidation.healthy", "1 while the Redis invalidation channel is healthy (the session cache is trusted), else 0.", "1")
		lag = gauge("bff.invalidation.lag", "Age of the invalidation channel's latest answered ping: how late an invalidation may be.", "s")
	}
	if err := errors.Join(errs...); err != nil {
		return fieldErr("MeterProvider", "could not create bff's instruments: %v", err)
	}
	mem, _ := st.be.(*storage.Memory)
	insts := []metric.Observable{cache, storeErrs, breakerOpen}
	if healthy != nil {
		insts = append(insts, healthy, lag)
	}
	if mem != nil {
		insts = append(insts, active)
	}
	t.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for r := range cacheResults {
			o.ObserveInt64(cache, t.cache[r].Load(), cacheResultOpts[r])
		}
		o.ObserveInt64(storeErrs, st.breaker.errors.Load())
		o.ObserveFloat64(breakerOpen, boolFloat(st.breaker.allow() != nil))
		if healthy != nil {
			o.ObserveFloat64(healthy, boolFloat(st.bus.Healthy()))
			if d, ok := st.bus.Lag(); ok {
				o.ObserveFloat64(lag, d.Seconds())
			}
		}
		if mem != nil {
			o.ObserveInt64(active, int64(mem.Live("s:"))) // record names (see isRecordName)
		}
		return nil
	}, insts...)
	if err != nil {
		return fieldErr("MeterProvider", "could not register bff's observable instruments: %v", err)
	}
	return nil
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// close stops the observable instruments' reports.
func (t *telemetry) close() {
	if t.reg != nil {
		t.reg.Unregister()
	}
}

// addOpts and recordOpts build an instrument's options for one attribute,
// once, so that recording allocates nothing for them.
func addOpts(key, value string) []metric.AddOption {
	return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String(key, value)))}
}

func recordOpts(kvs ...attribute.KeyValue) []metric.RecordOption {
	return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(kvs...))}
}

// cacheResult is the result of a session lookup in the cache.
type cacheResult int

const (
	cacheHit       cacheResult = iota
	cacheMiss                  // not cached (the store is read)
	cacheUntrusted             // the invalidation channel is unhealthy (the store is read)
	cacheResults
)

var cacheResultOpts = [cacheResults]metric.ObserveOption{
	metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "hit"))),
	metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "miss"))),
	metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "untrusted"))),
}

// cacheMissOrUntrusted tells a miss from a lookup refused because the
// cache may not be trusted now (trusted, if not nil, says).
func cacheMissOrUntrusted(trusted func() bool) cacheResult {
	if trusted != nil && !trusted() {
		return cacheUntrusted
	}
	return cacheMiss
}

// cacheLookup counts one session lookup of the cache (only when metrics
// are on: without them, the hot path does nothing at all for telemetry).
func (t *telemetry) cacheLookup(r cacheResult) {
	if t != nil && t.metering {
		t.cache[r].Add(1)
	}
}

// endReason says why a session ended (bff.session.ended).
type endReason string

const (
	endLogout        endReason = "logout"         // the user signed out
	endBackchannel   endReason = "backchannel"    // the provider's back-channel logout
	endRevoked       endReason = "revoked"        // RevokeSession or RevokeSessions
	endExpired       endReason = "expired"        // idle timeout or maximum lifetime, found by a request or an event stream
	endRefreshFailed endReason = "refresh_failed" // the refresh token was rejected, or the refreshed ID token was bad
	endLimit         endReason = "limit"          // MaxSessionsPerUser: the oldest session made room
	endReplaced      endReason = "replaced"       // the browser signed in again (a new session replaces it)
)

var endReasonOpts = map[endReason][]metric.AddOption{}

func init() {
	for _, r := range []endReason{endLogout, endBackchannel, endRevoked, endExpired, endRefreshFailed, endLimit, endReplaced} {
		endReasonOpts[r] = addOpts("reason", string(r))
	}
}

// sessionsEnded counts n sessions ended for reason.
func (t *telemetry) sessionsEnded(ctx context.Context, reason endReason, n int) {
	if t != nil && n > 0 {
		t.ended.Add(ctx, int64(n), endReasonOpts[reason]...)
	}
}

// sessionEnded counts a session that ended when last is not nil (the
// result of sessionStore.end: nil when it had already ended).
func (t *telemetry) sessionEnded(ctx context.Context, reason endReason, last *session) {
	if last != nil {
		t.sessionsEnded(ctx, reason, 1)
	}
}

// Refresh outcomes (bff.refresh). Every request that needed a refresh
// counts once: the one that did the work with what came of it, the others
// as joined.
const (
	refreshRefreshed    = "refreshed"     // new tokens from the provider
	refreshJoined       = "joined"        // another request's refresh, here or on another instance, served this one
	refreshInvalidGrant = "invalid_grant" // the provider rejected the refresh token: the session ended
	refreshEnded        = "ended"         // the session ended otherwise (bad refreshed ID token, ended meanwhile, no refresh token)
	refreshTransient    = "transient"     // the provider, lock or store failed: the session is kept
)

var refreshOpts = map[string][]metric.AddOption{}
var refreshDurOpts = map[string][]metric.RecordOption{}

func init() {
	for _, o := range []string{refreshRefreshed, refreshJoined, refreshInvalidGrant, refreshEnded, refreshTransient} {
		refreshOpts[o] = addOpts("outcome", o)
		refreshDurOpts[o] = recordOpts(attribute.String("outcome", o))
	}
}

// errInvalidGrant: the provider rejected the refresh token.
var errInvalidGrant = errors.New("refresh token rejected (invalid_grant)")

// refreshOutcome maps a RefreshEvent's outcome to the metric's.
func refreshOutcome(outcome RefreshOutcome, err error) string {
	switch {
	case outcome == OutcomeRefreshed:
		return refreshRefreshed
	case outcome == OutcomeReused:
		return refreshJoined
	case outcome == OutcomeEnded && errors.Is(err, errInvalidGrant):
		return refreshInvalidGrant
	case outcome == OutcomeEnded:
		return refreshEnded
	}
	return refreshTransient
}

// refreshDone records a refresh that this instance ran (refreshLocked)
// and ends its span.
func (t *telemetry) refreshDone(ctx context.Context, span trace.Span, outcome RefreshOutcome, err error, d time.Duration) {
	o := refreshOutcome(outcome, err)
	t.refresh.Add(ctx, 1, refreshOpts[o]...)
	t.refreshDur.Record(ctx, d.Seconds(), refreshDurOpts[o]...)
	span.SetAttributes(attribute.String("bff.outcome", o))
	if err != nil {
		span.SetStatus(codes.Error, o)
	}
	span.End()
}

// refreshShared counts a request whose refresh joined another request's.
func (t *telemetry) refreshShared(ctx context.Context, joined bool) {
	if joined {
		t.refresh.Add(ctx, 1, refreshOpts[refreshJoined]...)
	}
}

// startSpan starts a span named name as a child of ctx's, when tracing is
// on; otherwise it returns ctx and a span that does nothing (never ctx's
// own span, which is the application's to end).
func (t *telemetry) startSpan(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !t.tracing {
		return ctx, noSpan
	}
	return t.tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
}

// noSpan is a span that records nothing.
var noSpan = trace.SpanFromContext(context.Background())

// requestSpan starts a span for an incoming request: a child of the span
// in its context (a server span then becomes an internal one), or else of
// the W3C traceparent the request carries.
func (t *telemetry) requestSpan(r *http.Request, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (*http.Request, trace.Span) {
	if !t.tracing {
		return r, noSpan
	}
	ctx := r.Context()
	switch {
	case !trace.SpanContextFromContext(ctx).IsValid():
		ctx = w3c.Extract(ctx, propagation.HeaderCarrier(r.Header))
	case kind == trace.SpanKindServer:
		kind = trace.SpanKindInternal // the application's server span is the parent
	}
	ctx, span := t.tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
	return r.WithContext(ctx), span
}

// inject sets the W3C traceparent (and tracestate) of ctx's span on an
// outbound request's header, when tracing is on. Without tracing, headers
// are left as they are.
func (t *telemetry) inject(ctx context.Context, h http.Header) {
	if t.tracing {
		w3c.Inject(ctx, propagation.HeaderCarrier(h))
	}
}

// statusClass names an HTTP status's class ("2xx"), for bounded attributes.
func statusClass(status int) int {
	if status < 100 || status > 599 {
		return 0
	}
	return status / 100
}

var statusClassNames = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

var (
	proxyReqOpts [6][]metric.AddOption
	proxyDurOpts [6][]metric.RecordOption
)

func init() {
	for i, n := range statusClassNames {
		proxyReqOpts[i] = addOpts("status_class", n)
		proxyDurOpts[i] = recordOpts(attribute.String("status_class", n))
	}
}

// statusWriter remembers the status of a response, and the outcome that
// bff noted on it (noteOutcome). Unwrap lets http.ResponseController reach
// the writer's Flush and Hijack.
type statusWriter struct {
	http.ResponseWriter
	status  int
	outcome string
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 && status >= 200 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// noteOutcome records why a request of an observed route failed (the
// first note wins): the *Error's code, or a more precise outcome noted
// before it.
func noteOutcome(w http.ResponseWriter, outcome string) {
	if sw, ok := w.(*statusWriter); ok && sw.outcome == "" {
		sw.outcome = outcome
	}
}

// proxyStart observes one request through Proxy: its span (the parent of
// the upstream request), status class and duration. Call done when the
// response is complete.
func (t *telemetry) proxyStart(w http.ResponseWriter, r *http.Request, host string) (_ http.ResponseWriter, _ *http.Request, done func()) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	r, span := t.requestSpan(r, "bff.proxy", trace.SpanKindClient,
		attribute.String("http.request.method", methodName(r.Method)), attribute.String("server.address", host))
	return sw, r, func() {
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		c := statusClass(status)
		ctx := r.Context()
		t.proxyRequests.Add(ctx, 1, proxyReqOpts[c]...)
		t.proxyDur.Record(ctx, time.Since(start).Seconds(), proxyDurOpts[c]...)
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, statusClassNames[c])
		}
		span.End()
	}
}

// methodName bounds a method attribute to the standard methods.
func methodName(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE":
		return m
	}
	return "_OTHER"
}
