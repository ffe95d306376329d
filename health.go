package bff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"time"

	"github.com/gomodule/redigo/redis"
)

// HealthStatus is the state of one check, or of the whole BFF.
type HealthStatus string

// The states, from best to worst.
const (
	// HealthOK: everything works.
	HealthOK HealthStatus = "ok"
	// HealthDegraded: requests are served correctly, but something that
	// makes them cheaper is down (the invalidation channel: every request
	// reads the store).
	HealthDegraded HealthStatus = "degraded"
	// HealthDown: the provider or the session store cannot be reached, so
	// sign-ins (or every request) fail.
	HealthDown HealthStatus = "down"
)

// Health is the report of (*BFF).Health, and the JSON body of
// HealthHandler: {"status": "ok", "checks": {"provider": {"status": "ok"},
// …}}.
type Health struct {
	Status HealthStatus                    `json:"status"` // the worst of Checks' (a failed invalidation check degrades, no more)
	Checks map[HealthCheckName]HealthCheck `json:"checks"` // the checks that ran
}

// HealthCheck is the result of one check. Err says why it is not ok; it is
// for logs and is never part of the JSON (it may name internal hosts).
type HealthCheck struct {
	Status HealthStatus `json:"status"` // HealthOK or HealthDown
	Err    error        `json:"-"`      // why it is down; nil when ok
}

// HealthCheckName names one check of a Health report.
type HealthCheckName string

// The checks of a Health report.
const (
	// HealthCheckProvider: discovery has succeeded and the provider's
	// discovery document can be fetched now.
	HealthCheckProvider HealthCheckName = "provider"
	// HealthCheckStore: the session store answers (Redis: a PING; a custom
	// Store: a Find of a fixed key; the memory store always does).
	HealthCheckStore HealthCheckName = "store"
	// HealthCheckInvalidation, with Redis and the session cache only: the
	// invalidation channel is healthy. When it is not, requests read
	// Redis: the report is degraded, not down.
	HealthCheckInvalidation HealthCheckName = "invalidation"
)

// healthTTL is how long a health report is reused: probes every second
// from several load balancers cost the provider and the store at most one
// request per instance per healthTTL.
const healthTTL = 2 * time.Second

// healthProbeTimeout bounds each check.
const healthProbeTimeout = 2 * time.Second

// healthReport is a report and when it was made.
type healthReport struct {
	h  Health
	at time.Time
}

// Health checks the provider, the session store and (with Redis) the
// invalidation channel, and reports each and overall: down if the provider
// or the store is down, degraded if only the invalidation channel is, else
// ok. A report is reused for 2 seconds, and concurrent calls share one run
// of the checks, so it is cheap enough to call on every readiness probe.
// Each check takes at most 2 seconds; if ctx ends first, Health reports
// down.
func (b *BFF) Health(ctx context.Context) Health {
	if r := b.health.Load(); r != nil && time.Since(r.at) < healthTTL {
		return r.h.clone()
	}
	r, err := b.healthRun.Do(ctx, "health", func() (*healthReport, error) {
		r := &healthReport{h: b.checkHealth(), at: time.Now()}
		b.logHealth(b.health.Swap(r), r)
		return r, nil
	})
	if err != nil {
		return Health{Status: HealthDown, Checks: map[HealthCheckName]HealthCheck{}}
	}
	return r.h.clone()
}

func (h Health) clone() Health {
	h.Checks = maps.Clone(h.Checks)
	return h
}

// checkHealth runs the checks, in parallel.
func (b *BFF) checkHealth() Health {
	ctx, cancel := context.WithTimeout(context.Background(), healthProbeTimeout)
	defer cancel()
	prov, store := make(chan error, 1), make(chan error, 1)
	go func() { prov <- b.probeProvider(ctx) }()
	go func() { store <- b.probeStore(ctx) }()
	h := Health{Status: HealthOK, Checks: map[HealthCheckName]HealthCheck{}}
	set := func(name HealthCheckName, err error, worst HealthStatus) {
		c := HealthCheck{Status: HealthOK, Err: err}
		if err != nil {
			c.Status = HealthDown
			if worst == HealthDown || h.Status == HealthOK {
				h.Status = worst
			}
		}
		h.Checks[name] = c
	}
	if bus := b.store.bus; bus != nil {
		var err error
		if !bus.Healthy() {
			err = errors.New("the invalidation channel has not answered a ping within 80 ms")
		}
		set(HealthCheckInvalidation, err, HealthDegraded)
	}
	set(HealthCheckProvider, <-prov, HealthDown)
	set(HealthCheckStore, <-store, HealthDown)
	return h
}

// probeProvider fetches the discovery document (after discovery has
// succeeded: before, the discovery loop is what tries).
func (b *BFF) probeProvider(ctx context.Context) error {
	if b.provider() == nil {
		return errors.New("provider discovery has not succeeded yet")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.tel.discoveryURL, nil)
	if err != nil {
		return err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("discovery document: status %d", resp.StatusCode)
	}
	return nil
}

// healthProbeKey is the record a custom store is asked for; it never
// exists.
const healthProbeKey = "health-probe"

func (b *BFF) probeStore(ctx context.Context) error {
	switch {
	case b.cfg.Redis != nil:
		conn, err := b.cfg.Redis.GetContext(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		_, err = redis.DoContext(conn, ctx, "PING")
		return err
	case b.cfg.memoryStore:
		return nil
	}
	_, _, err := b.store.be.Get(ctx, healthProbeKey)
	return err
}

// logHealth logs the checks whose status changed.
func (b *BFF) logHealth(prev, cur *healthReport) {
	for name, c := range cur.h.Checks {
		was := HealthOK
		if prev != nil {
			was = prev.h.Checks[name].Status
		}
		switch {
		case c.Status == was:
		case c.Status == HealthOK:
			b.log.Info("bff: health check recovered", "check", name)
		default:
			b.log.Warn("bff: health check failed", "check", name, "err", c.Err)
		}
	}
}

// HealthHandler serves Health as JSON for readiness probes (GET or HEAD):
// 200 when ok or degraded, 503 when down. The body never holds an error
// message.
func (b *BFF) HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSONError(w, errMethod)
			return
		}
		h := b.Health(r.Context())
		status := http.StatusOK
		if h.Status == HealthDown {
			status = http.StatusServiceUnavailable
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, status, h)
	})
}
