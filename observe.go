package bff

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// This file observes bff's HTTP work: the auth routes' spans and metrics,
// the calls to the provider, and the trace IDs in log lines. telemetry.go
// holds the instruments.

// providerTimeKey holds, in a sign-in callback's context, the time spent
// in provider calls so far (an *atomic.Int64 of nanoseconds).
var providerTimeKey = &ctxKey{"provider time"}

// observeCallback wraps the sign-in callback: its span, bff.login by
// outcome and bff.login.duration split into the provider's part and bff's.
func (t *telemetry) observeCallback(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		var inProvider atomic.Int64
		r, span := t.requestSpan(r, "bff.login.callback", trace.SpanKindServer)
		r = r.WithContext(context.WithValue(r.Context(), providerTimeKey, &inProvider))
		h(sw, r)

		outcome := sw.outcome
		switch {
		case outcome != "":
		case sw.status >= 400:
			outcome = "server_error"
		default:
			outcome = "success"
		}
		ctx := r.Context()
		out := attribute.String("outcome", outcome)
		t.login.Add(ctx, 1, metric.WithAttributes(out))
		total, provider := time.Since(start), time.Duration(inProvider.Load())
		t.loginDur.Record(ctx, (total - provider).Seconds(), metric.WithAttributes(out, attribute.String("part", "bff")))
		if provider > 0 {
			t.loginDur.Record(ctx, provider.Seconds(), metric.WithAttributes(out, attribute.String("part", "provider")))
		}
		endRequestSpan(span, sw.status, outcome, outcome != "success")
	}
}

// observeLogout wraps the logout routes: a span each, and for the
// back-channel logout bff.backchannel_logout by outcome.
func (t *telemetry) observeLogout(name string, count bool, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		r, span := t.requestSpan(r, name, trace.SpanKindServer)
		h(sw, r)
		outcome := logoutOutcome(sw.status)
		if count {
			t.backchannel.Add(r.Context(), 1, backchannelOpts[outcome]...)
		}
		endRequestSpan(span, sw.status, outcome, sw.status >= 500)
	}
}

// Back-channel logout outcomes: the provider learns them from the status.
const (
	backchannelSuccess     = "success"     // 200: the token was valid; its sessions ended
	backchannelInvalid     = "invalid"     // 400: a bad, expired or replayed logout token; nothing ended
	backchannelUnavailable = "unavailable" // 503: key set, store or discovery unavailable; the provider retries
	backchannelError       = "error"       // anything else
)

var backchannelOpts = map[string][]metric.AddOption{}

func init() {
	for _, o := range []string{backchannelSuccess, backchannelInvalid, backchannelUnavailable, backchannelError} {
		backchannelOpts[o] = addOpts("outcome", o)
	}
}

func logoutOutcome(status int) string {
	switch {
	case status < 400:
		return backchannelSuccess
	case status == http.StatusBadRequest:
		return backchannelInvalid
	case status == http.StatusServiceUnavailable:
		return backchannelUnavailable
	}
	return backchannelError
}

func endRequestSpan(span trace.Span, status int, outcome string, failed bool) {
	if status != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	span.SetAttributes(attribute.String("bff.outcome", outcome))
	if failed {
		span.SetStatus(codes.Error, outcome)
	}
	span.End()
}

// providerClient returns a copy of c whose calls are observed:
// bff.provider.duration and bff.provider.errors by endpoint, and, within a
// traced operation, a client span each (a child of the operation's,
// carrying its W3C traceparent).
func (t *telemetry) providerClient(c *http.Client) *http.Client {
	cc := *c
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	cc.Transport = &providerTransport{t: t, rt: rt}
	return &cc
}

type providerTransport struct {
	t  *telemetry
	rt http.RoundTripper
}

// The provider's endpoints, as attribute values.
var providerEndpoints = []string{"discovery", "token", "userinfo", "revocation", "jwks", "par", "other"}

var (
	providerAddOpts    = map[string][]metric.AddOption{}
	providerRecordOpts = map[string][]metric.RecordOption{}
)

func init() {
	for _, e := range providerEndpoints {
		providerAddOpts[e] = addOpts("endpoint", e)
		providerRecordOpts[e] = recordOpts(attribute.String("endpoint", e))
	}
}

func (p *providerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t := p.t
	ep := t.endpoint(req.URL)
	start := time.Now()
	ctx, span := req.Context(), noSpan
	// Only calls made for a traced operation (a sign-in, refresh, logout)
	// get a span: discovery retries and health probes would each start a
	// trace of their own.
	traced := t.tracing && trace.SpanFromContext(ctx).IsRecording()
	if traced {
		ctx, span = t.startSpan(ctx, "bff.provider."+ep, trace.SpanKindClient,
			attribute.String("bff.endpoint", ep), attribute.String("http.request.method", methodName(req.Method)),
			attribute.String("server.address", req.URL.Hostname()))
		req = req.Clone(ctx)
		w3c.Inject(ctx, propagation.HeaderCarrier(req.Header))
	}
	resp, err := p.rt.RoundTrip(req)
	d := time.Since(start)
	if acc, ok := ctx.Value(providerTimeKey).(*atomic.Int64); ok {
		acc.Add(int64(d))
	}
	t.providerDur.Record(ctx, d.Seconds(), providerRecordOpts[ep]...)
	switch {
	case err != nil:
		t.providerErrors.Add(ctx, 1, providerAddOpts[ep]...)
		span.SetStatus(codes.Error, "no response")
	case resp.StatusCode >= 500:
		t.providerErrors.Add(ctx, 1, providerAddOpts[ep]...)
		span.SetStatus(codes.Error, statusClassNames[5])
	}
	if resp != nil {
		span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	}
	span.End()
	return resp, err
}

// endpoint names the provider endpoint u is (without its query).
func (t *telemetry) endpoint(u *url.URL) string {
	s := u.Scheme + "://" + u.Host + u.Path
	if s == t.discoveryURL {
		return "discovery"
	}
	p := t.prov.Load()
	if p == nil {
		return "other"
	}
	same := func(endpoint string) bool {
		e, _, _ := strings.Cut(endpoint, "?")
		return e != "" && e == s
	}
	switch {
	case same(p.oauth.Endpoint.TokenURL):
		return "token"
	case same(p.userinfoURL):
		return "userinfo"
	case same(p.revocationURL):
		return "revocation"
	case p.keys != nil && same(p.keys.URL()):
		return "jwks"
	case same(p.x.parURL):
		return "par"
	}
	return "other"
}

// withTraceIDs makes every record logged with a context that holds a span
// carry its trace_id and span_id.
func withTraceIDs(l *slog.Logger) *slog.Logger {
	if _, ok := l.Handler().(traceHandler); ok {
		return l
	}
	return slog.New(traceHandler{l.Handler()})
}

type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(attrs)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}

// subject is the log attribute naming a session's user: empty (dropped by
// slog) unless Options.LogSubjects is set.
func (b *BFF) subject(sub string) slog.Attr {
	if !b.cfg.LogSubjects {
		return slog.Attr{}
	}
	return slog.String("sub", sub)
}
