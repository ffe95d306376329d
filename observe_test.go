package bff

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/gobff/bff/internal/oidctest"
)

// callbackRequest runs a sign-in up to the provider's redirect back, and
// returns the callback request (with the browser's cookies) for the test
// to serve.
func callbackRequest(t testing.TB, a *app) *http.Request {
	br := newBrowser(t)
	cb := a.startLogin(br)
	r := httptest.NewRequest("GET", cb, nil)
	for _, c := range br.Jar.Cookies(r.URL) {
		r.AddCookie(c)
	}
	return r
}

// appSpan is the span of the application's own tracing (as otelhttp would
// put it in the request's context).
var appSpan = trace.NewSpanContext(trace.SpanContextConfig{
	TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
	SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
	TraceFlags: trace.FlagsSampled,
})

// TestLogsCarryTraceIDs: a log line written while a span is in the
// request's context carries its trace and span IDs; without one, none.
func TestLogsCarryTraceIDs(t *testing.T) {
	var logs logBuffer
	a := newApp(t, testOP(t, oidctest.Config{}), func(o *Options) {
		o.Logger = logs.JSONLogger()
	})
	r := callbackRequest(t, a)
	r = r.WithContext(trace.ContextWithSpanContext(r.Context(), appSpan))
	serve(t, a.bff, r, http.StatusSeeOther)
	line := logs.Find(t, "bff: signed in")
	if line["trace_id"] != appSpan.TraceID().String() || line["span_id"] != appSpan.SpanID().String() {
		t.Errorf("signed-in line %v, want trace_id %s and span_id %s", line, appSpan.TraceID(), appSpan.SpanID())
	}

	// A refused request logs through the same handler.
	refused := httptest.NewRequest("POST", a.URL+"/auth/logout", nil)
	refused.Header.Set("Sec-Fetch-Site", "cross-site")
	serve(t, a.bff, refused.WithContext(trace.ContextWithSpanContext(refused.Context(), appSpan)), http.StatusForbidden)
	if line := logs.Find(t, "bff: request refused"); line["trace_id"] != appSpan.TraceID().String() {
		t.Errorf("refused line %v has no trace_id", line)
	}
	for _, rec := range logs.Records(t) {
		if rec["msg"] == "bff: provider discovered" && rec["trace_id"] != nil {
			t.Errorf("a line logged without a span carries a trace_id: %v", rec)
		}
	}
}

// TestLogsNameNoUser: by default no log line, at any level, names the
// user: not at sign-in, refresh, sign-out nor back-channel logout. With
// LogSubjects, the sign-in line does.
func TestLogsNameNoUser(t *testing.T) {
	for _, logSubjects := range []bool{false, true} {
		var logs logBuffer
		clk := &offsetClock{}
		a := newApp(t, testOP(t, oidctest.Config{Now: clk.Now}), func(o *Options) {
			o.Now = clk.Now
			o.LogSubjects = logSubjects
			o.Logger = logs.JSONLogger()
		})
		br := a.signIn(t)
		clk.Advance(2 * 3600e9) // past the access token's hour: a refresh
		a.expect(t, br, "/api/me", 200, "refresh")
		s := a.browserSession(br)
		br.send("POST", a.URL+"/auth/logout", "Origin", a.URL)
		a.login(br)
		a.expectBackchannel(t, a.op.LogoutToken(s.rec.Subject, "", nil), 200, "")

		sub := oidctest.DefaultUser.Subject
		for _, msg := range []string{"bff: signed in", "bff: token refresh", "bff: signed out", "bff: back-channel logout"} {
			line := logs.Find(t, msg)
			if got, _ := line["sub"].(string); (got == sub) != logSubjects {
				t.Errorf("LogSubjects=%v: %q logged sub %q", logSubjects, msg, got)
			}
		}
		if !logSubjects && strings.Contains(logs.String(), sub) {
			t.Errorf("the subject %q is in the logs:\n%s", sub, logs.String())
		}
	}
}
