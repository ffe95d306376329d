package telemetrytest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/gobff/bff"
	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/redistest"
	"github.com/gobff/bff/internal/testsupport"
)

// BenchmarkRequireSessionTelemetry measures the hot path (RequireSession,
// a session this instance has cached, a fresh token) with telemetry off
// (no providers: no-op) and on (the SDK's MeterProvider with a reader, and
// its TracerProvider), on the memory store and on Redis with the session
// cache. scripts/bench.sh compares "off" with "on" (BENCHMARKS.md).
func BenchmarkRequireSessionTelemetry(b *testing.B) {
	for _, store := range []string{"memory", "redis-cache"} {
		for _, mode := range []string{"off", "on"} {
			b.Run(store+"/"+mode, func(b *testing.B) {
				var rs *redistest.Server
				if store == "redis-cache" {
					rs = redistest.Start(b)
				}
				h, r := hotPath(b, rs, store, mode == "on")
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, r)
					if w.Code != 200 {
						b.Fatalf("status %d", w.Code)
					}
				}
			})
		}
	}
}

// hotPath signs a user in and returns the guarded handler and a request
// with the session cookie, once the session is served from the cache.
func hotPath(b *testing.B, rs *redistest.Server, store string, on bool) (http.Handler, *http.Request) {
	op := startOP(b, oidctest.Config{})
	a := newApp(b, op, nil, func(o *bff.Options) {
		if on {
			tel := newTelemetry(b)
			o.MeterProvider, o.TracerProvider = tel.mp, tel.tp
		}
		if store == "redis-cache" {
			o.Redis = rs.Pool()
		}
	})
	id := a.login(testsupport.NewBrowser(b))
	h := a.bff.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"sub":"alice-0001"}` + "\n"))
	}))
	r := httptest.NewRequest("GET", a.URL+"/api/me", nil)
	r.Header.Set("Cookie", "theme=dark; __Host-bff="+id)
	// With Redis, the cache is used once the invalidation channel is
	// healthy.
	testsupport.WaitUntil(b, 10*time.Second, "a healthy invalidation channel", func() bool {
		h := a.bff.Health(context.Background())
		c, ok := h.Checks[bff.HealthCheckInvalidation]
		return !ok || c.Status == bff.HealthOK
	})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r) // fills the cache
	return h, r
}

// BenchmarkTelemetryOverhead runs the hot path with telemetry off and on
// side by side, in alternating batches (the order swapped each round), so
// that both see the same load on a shared machine, and reports each one's
// time per request and the median over rounds of on/off − 1 as
// overhead-% (each b.Loop iteration is one round of 2×batch requests).
func BenchmarkTelemetryOverhead(b *testing.B) {
	const batch = 2000
	for _, store := range []string{"memory", "redis-cache"} {
		b.Run(store, func(b *testing.B) {
			var rs *redistest.Server
			if store == "redis-cache" {
				rs = redistest.Start(b)
			}
			type variant struct {
				h     http.Handler
				r     *http.Request
				total time.Duration
			}
			off, on := &variant{}, &variant{}
			off.h, off.r = hotPath(b, rs, store, false)
			on.h, on.r = hotPath(b, rs, store, true)
			run := func(v *variant) time.Duration {
				start := time.Now()
				for range batch {
					w := httptest.NewRecorder()
					v.h.ServeHTTP(w, v.r)
				}
				d := time.Since(start)
				v.total += d
				return d
			}
			var ratios []float64
			round := 0
			b.ResetTimer()
			for b.Loop() {
				var dOff, dOn time.Duration
				if round%2 == 0 {
					dOff, dOn = run(off), run(on)
				} else {
					dOn, dOff = run(on), run(off)
				}
				ratios = append(ratios, float64(dOn)/float64(dOff))
				round++
			}
			slices.Sort(ratios)
			n := float64(b.N * batch)
			b.ReportMetric(float64(off.total.Nanoseconds())/n, "off-ns/req")
			b.ReportMetric(float64(on.total.Nanoseconds())/n, "on-ns/req")
			b.ReportMetric(100*(ratios[len(ratios)/2]-1), "overhead-%")
			b.ReportMetric(0, "ns/op")
		})
	}
}
