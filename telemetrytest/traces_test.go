package telemetrytest

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/gobff/bff"
	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/testsupport"
)

// incoming is the W3C traceparent of a request from a traced client.
const (
	incomingTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	incomingParent = "00f067aa0ba902b7"
	incoming       = "00-" + incomingTrace + "-" + incomingParent + "-01"
)

// spanTree indexes the ended spans.
type spanTree struct {
	spans []sdktrace.ReadOnlySpan
}

func (tel *telemetry) tree() spanTree { return spanTree{tel.spans.Ended()} }

func (s spanTree) named(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, sp := range s.spans {
		if sp.Name() == name {
			out = append(out, sp)
		}
	}
	return out
}

// children returns the names of parent's child spans, sorted.
func (s spanTree) children(parent sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, sp := range s.spans {
		if sp.Parent().SpanID() == parent.SpanContext().SpanID() && sp.Parent().TraceID() == parent.SpanContext().TraceID() {
			out = append(out, sp.Name())
		}
	}
	slices.Sort(out)
	return out
}

func (s spanTree) one(t *testing.T, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	got := s.named(name)
	if len(got) != 1 {
		t.Fatalf("%d spans named %s, want 1", len(got), name)
	}
	return got[0]
}

// TestProxyTraceparent: the proxy's upstream request carries a W3C
// traceparent that continues the incoming request's trace, with the
// proxy's span as parent; the proxy's span is the incoming one's child.
func TestProxyTraceparent(t *testing.T) {
	var mu sync.Mutex
	var got []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Traceparent"))
		mu.Unlock()
		w.WriteHeader(http.StatusTeapot)
	}))
	t.Cleanup(up.Close)
	target, _ := url.Parse(up.URL)

	tel := newTelemetry(t)
	a := newApp(t, startOP(t, oidctest.Config{}), target, func(o *bff.Options) {
		o.TracerProvider, o.MeterProvider = tel.tp, tel.mp
	})
	br := testsupport.NewBrowser(t)
	a.login(br)
	if code := br.Do("GET", a.URL+"/api/upstream/x", "", "Traceparent", incoming).StatusCode; code != http.StatusTeapot {
		t.Fatalf("proxied request: %d", code)
	}

	// The proxy flushes the upstream's answer before its span ends.
	testsupport.WaitUntil(t, 10*time.Second, "the bff.proxy span to end", func() bool { return len(tel.tree().named("bff.proxy")) > 0 })
	proxySpan := tel.tree().one(t, "bff.proxy")
	sc := proxySpan.SpanContext()
	if proxySpan.Parent().TraceID().String() != incomingTrace || proxySpan.Parent().SpanID().String() != incomingParent ||
		!proxySpan.Parent().IsRemote() {
		t.Errorf("bff.proxy's parent %v, want the incoming %s", proxySpan.Parent(), incoming)
	}
	want := "00-" + incomingTrace + "-" + sc.SpanID().String() + "-01"
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != want {
		t.Errorf("upstream traceparent %q, want %q (the incoming trace, bff.proxy's span)", got, want)
	}
	if proxySpan.SpanKind() != trace.SpanKindClient || attr(proxySpan, "http.response.status_code").AsInt64() != http.StatusTeapot {
		t.Errorf("bff.proxy: kind %v, attributes %v", proxySpan.SpanKind(), proxySpan.Attributes())
	}
	expectPoints(t, tel, "bff.proxy.requests", map[string]int64{"status_class=4xx": 1})
}

// TestProxyTraceparentWithoutTracing: without a TracerProvider the
// incoming traceparent reaches the upstream unchanged.
func TestProxyTraceparentWithoutTracing(t *testing.T) {
	got := make(chan string, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Get("Traceparent") }))
	t.Cleanup(up.Close)
	target, _ := url.Parse(up.URL)
	a := newApp(t, startOP(t, oidctest.Config{}), target, nil)
	br := testsupport.NewBrowser(t)
	a.login(br)
	br.Do("GET", a.URL+"/api/upstream/x", "", "Traceparent", incoming)
	if tp := <-got; tp != incoming {
		t.Errorf("upstream traceparent %q, want the incoming %q", tp, incoming)
	}
}

func attr(sp sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range sp.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// TestSpanTree: a sign-in callback is one span with the provider calls as
// children (the code grant, the key set, userinfo); so is a refresh (the
// refresh grant) and a logout (the revocation).
func TestSpanTree(t *testing.T) {
	tel := newTelemetry(t)
	clk := &clock{}
	a := newApp(t, startOP(t, oidctest.Config{Now: clk.Now}), nil, func(o *bff.Options) {
		o.TracerProvider, o.Now = tel.tp, clk.Now
	})
	// Discovery and health probes are no operation of a user's: they
	// start no trace.
	a.bff.Health(t.Context())
	if spans := tel.spans.Ended(); len(spans) != 0 {
		t.Errorf("%d spans before any sign-in (%s…), want none", len(spans), spans[0].Name())
	}
	br := testsupport.NewBrowser(t)
	cb := a.callbackURL(br)
	if code := br.Do("GET", cb, "", "Traceparent", incoming).StatusCode; code != http.StatusSeeOther {
		t.Fatalf("callback: %d", code)
	}
	tree := tel.tree()
	callback := tree.one(t, "bff.login.callback")
	if got := tree.children(callback); !slices.Equal(got, []string{"bff.provider.jwks", "bff.provider.token", "bff.provider.userinfo"}) {
		t.Errorf("bff.login.callback's children %v, want the key set, the token and the userinfo calls", got)
	}
	if callback.Parent().TraceID().String() != incomingTrace || callback.SpanKind() != trace.SpanKindServer ||
		attr(callback, "bff.outcome").AsString() != "success" {
		t.Errorf("bff.login.callback: parent %v, kind %v, attributes %v", callback.Parent(), callback.SpanKind(), callback.Attributes())
	}
	token := tree.named("bff.provider.token")[0]
	if token.SpanKind() != trace.SpanKindClient || attr(token, "bff.endpoint").AsString() != "token" ||
		attr(token, "http.response.status_code").AsInt64() != 200 {
		t.Errorf("bff.provider.token: kind %v, attributes %v", token.SpanKind(), token.Attributes())
	}

	clk.Advance(2 * time.Hour)
	if code := br.Get(a.URL + "/api/me").StatusCode; code != 200 {
		t.Fatalf("refresh: %d", code)
	}
	a.logout(br)
	tree = tel.tree()
	if got := tree.children(tree.one(t, "bff.refresh")); !slices.Equal(got, []string{"bff.provider.token"}) {
		t.Errorf("bff.refresh's children %v, want the token call", got)
	}
	if got := tree.children(tree.one(t, "bff.logout")); !slices.Equal(got, []string{"bff.provider.revocation"}) {
		t.Errorf("bff.logout's children %v, want the revocation", got)
	}
}

// TestNoSecretsInTelemetry: after a whole user's life with tracing and
// metrics on, no span attribute, status or event and no metric attribute
// holds a token, the authorization code, the session ID, the cookie or the
// subject.
func TestNoSecretsInTelemetry(t *testing.T) {
	tel := newTelemetry(t)
	clk := &clock{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(401) }))
	t.Cleanup(up.Close)
	target, _ := url.Parse(up.URL)
	op := startOP(t, oidctest.Config{Now: clk.Now})
	a := newApp(t, op, target, func(o *bff.Options) {
		o.TracerProvider, o.MeterProvider, o.Now = tel.tp, tel.mp, clk.Now
	})
	br := testsupport.NewBrowser(t)
	cb := a.callbackURL(br)
	code, _ := url.Parse(cb)
	br.Get(cb)
	id := a.sessionID(br)
	clk.Advance(2 * time.Hour)
	br.Get(a.URL + "/api/me")
	br.Get(a.URL + "/api/upstream/x") // 401 upstream: a refresh of a rejected token
	access := br.Get(a.URL + "/api/token").Body
	a.logout(br)
	a.login(br)
	a.backchannel(op.op.LogoutToken(oidctest.DefaultUser.Subject, "", nil))

	secrets := append(op.tokens(), access, code.Query().Get("code"), code.Query().Get("state"), id, oidctest.DefaultUser.Subject)
	if len(secrets) < 10 {
		t.Fatalf("only %d secrets collected", len(secrets))
	}
	var values []string
	for _, sp := range tel.spans.Ended() {
		values = append(values, sp.Name(), sp.Status().Description)
		for _, kv := range sp.Attributes() {
			values = append(values, kv.Value.Emit())
		}
		for _, ev := range sp.Events() {
			values = append(values, ev.Name)
			for _, kv := range ev.Attributes {
				values = append(values, kv.Value.Emit())
			}
		}
	}
	for name := range tel.collect(t) {
		values = append(values, name)
	}
	for _, m := range tel.collect(t) {
		for attrs := range pointValues(t, m) {
			values = append(values, attrs)
		}
	}
	for _, v := range values {
		for _, s := range secrets {
			if s != "" && strings.Contains(v, s) {
				t.Errorf("telemetry value %q holds a secret", v)
			}
		}
	}
}
