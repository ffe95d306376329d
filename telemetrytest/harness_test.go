package telemetrytest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gobff/bff"
	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/testsupport"
)

// The harness: the test OpenID Provider behind a front that can hold
// refresh grants and records every token it issues, an app server with a
// BFF on another origin, a cookie-keeping browser, and the SDK's in-memory
// metric reader and span recorder.

// clock is an injectable clock: real time plus an offset tests move.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// front serves the provider, holds refresh grants while hold is set, and
// records the tokens of every token response.
type front struct {
	op       *oidctest.Provider
	mu       sync.Mutex
	hold     chan struct{} // nil: not held
	held     atomic.Int64  // refresh grants waiting
	down     atomic.Bool
	issued   []string
	upstream http.Handler
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if r.URL.Path != "/token" {
		f.op.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if form, _ := url.ParseQuery(string(body)); form.Get("grant_type") == "refresh_token" {
		f.mu.Lock()
		hold := f.hold
		f.mu.Unlock()
		if hold != nil {
			f.held.Add(1)
			<-hold
		}
	}
	rec := httptest.NewRecorder()
	f.op.ServeHTTP(rec, r)
	var tok map[string]any
	if json.Unmarshal(rec.Body.Bytes(), &tok) == nil {
		f.mu.Lock()
		for _, k := range []string{"access_token", "refresh_token", "id_token"} {
			if v, _ := tok[k].(string); v != "" {
				f.issued = append(f.issued, v)
			}
		}
		f.mu.Unlock()
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

// holdRefreshes makes refresh grants wait until the returned release is
// called.
func (f *front) holdRefreshes() (release func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.hold = ch
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		f.hold = nil
		f.mu.Unlock()
		close(ch)
	}
}

func (f *front) tokens() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.issued...)
}

func startOP(t testing.TB, cfg oidctest.Config) *front {
	t.Helper()
	if cfg.SigningAlg == "" {
		cfg.SigningAlg = "ES256"
	}
	f := &front{op: oidctest.New(cfg)}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.op.SetIssuer(strings.Replace(srv.URL, "127.0.0.1", "localhost", 1))
	return f
}

// telemetry is the SDK side: a manual metric reader and a span recorder.
type telemetry struct {
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
	mp     *sdkmetric.MeterProvider
	tp     *sdktrace.TracerProvider
}

func newTelemetry(t testing.TB) *telemetry {
	tel := &telemetry{reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	tel.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(tel.reader))
	tel.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tel.spans))
	t.Cleanup(func() {
		tel.mp.Shutdown(context.Background())
		tel.tp.Shutdown(context.Background())
	})
	return tel
}

// collect reads every metric now.
func (tel *telemetry) collect(t testing.TB) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := tel.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// values returns a metric's data points by their attributes ("k=v,k=v",
// "" for none): a counter's or gauge's value, a histogram's count of
// recordings. It is empty for a metric that has no data.
func (tel *telemetry) values(t testing.TB, name string) map[string]float64 {
	t.Helper()
	return pointValues(t, tel.collect(t)[name])
}

func pointValues(t testing.TB, m metricdata.Metrics) map[string]float64 {
	out := map[string]float64{}
	switch d := m.Data.(type) {
	case nil:
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			out[attrString(p.Attributes)] = float64(p.Value)
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			out[attrString(p.Attributes)] = float64(p.Value)
		}
	case metricdata.Gauge[float64]:
		for _, p := range d.DataPoints {
			out[attrString(p.Attributes)] = p.Value
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			out[attrString(p.Attributes)] = float64(p.Count)
		}
	default:
		t.Fatalf("%s: unexpected data %T", m.Name, m.Data)
	}
	return out
}

// sum returns the value of the data point with exactly the attribute
// key=value (key "" for the point without attributes); 0 when none.
func (tel *telemetry) sum(t testing.TB, name, key, value string) int64 {
	t.Helper()
	attrs := ""
	if key != "" {
		attrs = key + "=" + value
	}
	return int64(tel.values(t, name)[attrs])
}

// points returns every data point of a counter (or the number of
// recordings of a histogram) by its attributes.
func (tel *telemetry) points(t testing.TB, name string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for k, v := range tel.values(t, name) {
		out[k] = int64(v)
	}
	return out
}

func attrString(set attribute.Set) string {
	var parts []string
	for _, kv := range set.ToSlice() {
		parts = append(parts, string(kv.Key)+"="+kv.Value.Emit())
	}
	return strings.Join(parts, ",")
}

// app is an app server with a BFF mounted at /auth/, /api/me behind
// RequireSession, and (with upstream) /api/upstream/ through Proxy.
type app struct {
	t   testing.TB
	bff *bff.BFF
	URL string
	op  *front
}

var testKey = []byte("0123456789abcdef0123456789abcdef")

func newApp(t testing.TB, op *front, upstream *url.URL, opt func(*bff.Options)) *app {
	t.Helper()
	var h atomic.Pointer[http.Handler]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*h.Load()).ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	o := bff.Options{
		Issuer: op.op.Issuer(), ClientID: op.op.ClientID(), ClientSecret: op.op.ClientSecret(), BaseURL: srv.URL,
		SecretKeys: [][]byte{testKey}, Logger: slog.New(slog.DiscardHandler),
	}
	if opt != nil {
		opt(&o)
	}
	b, err := bff.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/auth/", b)
	mux.Handle("GET /api/me", b.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := bff.UserFrom(r.Context())
		io.WriteString(w, u.Subject)
	})))
	// Only in tests: which token the handler got, to look for it in the
	// telemetry. A real app never sends a token to the browser.
	mux.Handle("GET /api/token", b.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := bff.TokenFrom(r.Context())
		io.WriteString(w, tok.AccessToken)
	})))
	if upstream != nil {
		mux.Handle("/api/upstream/", b.RequireSession(http.StripPrefix("/api/upstream", b.Proxy(upstream, bff.ProxyOptions{}))))
	}
	var handler http.Handler = mux
	h.Store(&handler)
	return &app{t: t, bff: b, URL: srv.URL, op: op}
}

// callbackURL runs /login and the provider's authorize step and returns
// the callback URL (not yet visited).
func (a *app) callbackURL(br *testsupport.Browser) string {
	a.t.Helper()
	resp := br.Get(a.URL + "/auth/login?returnTo=/")
	resp = br.Get(resp.Header.Get("Location"))
	cb := resp.Header.Get("Location")
	if !strings.HasPrefix(cb, a.URL+"/auth/callback") {
		a.t.Fatalf("authorize did not redirect to the callback: %q", cb)
	}
	return cb
}

// login signs br in and returns its session ID.
func (a *app) login(br *testsupport.Browser) string {
	a.t.Helper()
	if r := br.Get(a.callbackURL(br)); r.StatusCode != http.StatusSeeOther {
		a.t.Fatalf("callback: %d %s", r.StatusCode, r.Body)
	}
	return a.sessionID(br)
}

func (a *app) sessionID(br *testsupport.Browser) string {
	c, ok := br.Cookie(a.URL, "__Host-bff")
	if !ok {
		a.t.Fatal("no session cookie")
	}
	return c.Value
}

// logout signs br out with the page's form.
func (a *app) logout(br *testsupport.Browser) {
	a.t.Helper()
	if code := br.Do("POST", a.URL+"/auth/logout", "", "Origin", a.URL, "Sec-Fetch-Site", "same-origin").StatusCode; code != http.StatusSeeOther {
		a.t.Fatalf("logout: %d", code)
	}
}

// backchannel posts a logout token and returns the status.
func (a *app) backchannel(token string) int {
	a.t.Helper()
	resp, err := http.Post(a.URL+"/auth/backchannel-logout", "application/x-www-form-urlencoded",
		strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	if err != nil {
		a.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
