package oidctest

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLogoutTokenAndSignJWT(t *testing.T) {
	e := newEnv(t, Config{}, "")
	lt := e.op.LogoutToken("sub-1", "sid-1", func(c map[string]any) { c["extra"] = "x" })
	c, hdr, err := e.verify(lt)
	if err != nil {
		t.Fatal(err)
	}
	if hdr.ExtraHeaders["typ"] != "logout+jwt" || c["iss"] != e.op.Issuer() || c["aud"] != "bff-client" ||
		c["sub"] != "sub-1" || c["sid"] != "sid-1" || c["jti"] == "" || c["extra"] != "x" {
		t.Fatalf("logout token %v %v", c, hdr)
	}
	if c["exp"].(float64)-c["iat"].(float64) != 120 {
		t.Error("exp")
	}
	ev := c["events"].(map[string]any)
	if _, ok := ev["http://schemas.openid.net/event/backchannel-logout"]; !ok {
		t.Error("events")
	}
	if _, ok := c["nonce"]; ok {
		t.Error("nonce")
	}
	if _, _, err := e.verify(e.op.SignJWT(map[string]any{"a": 1}, SignOptions{UnknownKey: true})); err == nil {
		t.Error("unknown key verified")
	}
	none := e.op.SignJWT(map[string]any{"a": 1}, SignOptions{AlgNone: true})
	if !strings.HasSuffix(none, ".") || claimsUnverified(t, none)["a"] != float64(1) {
		t.Errorf("alg none: %q", none)
	}
	if _, _, err := e.verify(e.op.SignJWT(map[string]any{}, SignOptions{KID: "other"})); err == nil {
		t.Error("unknown kid verified")
	}
}

func TestRotateKeys(t *testing.T) {
	e := newEnv(t, Config{}, "")
	old := e.op.SignJWT(map[string]any{"a": 1}, SignOptions{})
	e.op.RotateKeysKeepOld()
	if len(e.fetchKeys()) != 2 {
		t.Fatal("keep old: want 2 keys")
	}
	if _, _, err := e.verify(old); err != nil {
		t.Fatal(err)
	}
	e.op.RotateKeys()
	if len(e.fetchKeys()) != 1 {
		t.Fatal("want 1 key")
	}
	if _, _, err := e.verify(old); err == nil {
		t.Fatal("old token still verifies")
	}
	if _, _, err := e.verify(e.op.SignJWT(map[string]any{"a": 1}, SignOptions{})); err != nil {
		t.Fatal(err)
	}
	if e.op.JWKSFetches() != 5 {
		t.Errorf("JWKSFetches = %d", e.op.JWKSFetches())
	}
}

func TestES256(t *testing.T) {
	e := newEnv(t, Config{SigningAlg: "ES256"}, "")
	tok := e.login(&authReq{})
	_, hdr, err := e.verify(tok["id_token"].(string))
	if err != nil || hdr.Algorithm != "ES256" {
		t.Fatalf("%v %v", hdr.Algorithm, err)
	}
}

func TestConcurrentUse(t *testing.T) {
	e := newEnv(t, Config{}, "")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := e.login(&authReq{})
			rt := tok["refresh_token"].(string)
			for range 3 {
				st, r := e.refresh(rt)
				if st != 200 {
					t.Errorf("refresh: %d %v", st, r)
					return
				}
				rt = r["refresh_token"].(string)
			}
			e.op.Misbehave(func(m *Misbehavior) { m.OmitAZP = i%2 == 0 })
			e.op.Sessions(DefaultUser.Subject)
		}()
	}
	wg.Wait()
}

func TestTokenDelayRespectsContext(t *testing.T) {
	e := newEnv(t, Config{}, "")
	e.op.Misbehave(func(m *Misbehavior) { m.TokenDelay = time.Hour })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", e.op.Endpoint("/token"),
		strings.NewReader("grant_type=refresh_token&refresh_token=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("bff-client", "bff-secret")
	start := time.Now()
	if _, err := e.c.Do(req); err == nil {
		t.Fatal("want a timeout")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("too slow")
	}
	// srv.Close in Cleanup would block if the handler ignored the context.
}

func TestStoreBounded(t *testing.T) {
	s := newStore[int](100)
	now := time.Now()
	for i := range 1000 {
		s.put(rand16(i), i, now.Add(time.Hour), now)
	}
	if len(s.m) != 100 || len(s.order) > 2*100+64 {
		t.Fatalf("len %d order %d", len(s.m), len(s.order))
	}
	if _, ok := s.get(rand16(999), now); !ok {
		t.Error("newest evicted")
	}
	if _, ok := s.get(rand16(0), now); ok {
		t.Error("oldest kept")
	}
	// Expired entries go first.
	s2 := newStore[int](10)
	for i := range 10 {
		exp := now.Add(time.Hour)
		if i == 5 {
			exp = now.Add(-time.Second)
		}
		s2.put(rand16(i), i, exp, now)
	}
	s2.put("new", 1, now.Add(time.Hour), now)
	if _, ok := s2.get(rand16(0), now); !ok {
		t.Error("evicted a live entry while an expired one existed")
	}
}

func rand16(i int) string {
	return strings.Repeat("k", 3) + string(rune('a'+i%26)) + time.Duration(i).String()
}

func TestPendingFloodBounded(t *testing.T) {
	e := newEnv(t, Config{Interactive: true}, "")
	for range 50 {
		resp, err := e.c.Get(e.authorizeURL(&authReq{}))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	e.op.mu.Lock()
	n := len(e.op.pending.m)
	e.op.mu.Unlock()
	if n != 50 || maxEntries < n {
		t.Fatalf("pending %d", n)
	}
}
