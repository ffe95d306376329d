package bff

import (
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
)

// The provider rotates its signing keys (dropping the old one) while
// sessions are in use, at a time when the key set's refetch is
// rate-limited (the limit protects the public back-channel endpoint; an
// attacker posting tokens with unknown key IDs keeps it in force):
// requests keep working, every session refreshes with an ID token signed
// by the new key and is kept, and new sign-ins verify. Only the
// rate-limited path stays closed to forged tokens.
func TestFaultJWKSRotationMidTraffic(t *testing.T) {
	clock := &offsetClock{}
	a := newApp(t, testOP(t, oidctest.Config{Now: clock.Now}), func(o *Options) {
		o.Now = clock.Now
		// The first sign-in fetches the keys; the limit is in force for the
		// rest of the test.
		hooksOf(o).keysRefetchInterval = time.Hour
	})
	const n = 4
	browsers := make([]*browser, n)
	for i := range browsers {
		browsers[i] = a.signIn(t)
	}
	// Background traffic through the rotation.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad atomic.Int64
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for _, br := range browsers[:n/2] {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := br.Client.Get(a.URL + "/api/me")
				if err != nil {
					bad.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					bad.Add(1)
				}
			}
		})
	}
	postForged := func() {
		forged := a.op.SignJWT(map[string]any{"iss": a.op.Issuer()}, oidctest.SignOptions{KID: "forged"})
		newBrowser(t).Do("POST", a.URL+"/auth/backchannel-logout", "logout_token="+forged, "Content-Type", "application/x-www-form-urlencoded")
	}
	postForged()

	a.op.RotateKeys()
	clock.Advance(oidctest.DefaultAccessTokenTTL) // every session refreshes now
	for i, br := range browsers {
		if code, body := a.status(br, "GET", "/api/me"); code != 200 {
			t.Errorf("session %d after the rotation: /api/me = %d %s, want 200 (refreshed with the new key)", i, code, body)
		}
	}
	late := a.signIn(t)
	if bad.Load() != 0 {
		t.Errorf("%d requests of the background traffic failed", bad.Load())
	}
	for _, br := range append(browsers, late) {
		id, _ := a.sessionCookie(br)
		if s, err := a.storeSession(id); err != nil || !a.op.RefreshTokenValid(s.rec.RefreshToken) {
			t.Errorf("a session lost its refresh token: %v", err)
		}
	}
	if a.op.FamilyRevoked(oidctest.DefaultUser.Subject) {
		t.Error("a token family was revoked")
	}
	// Tokens signed with an unknown key and posted to the public endpoint
	// still cost no fetch.
	before := a.op.JWKSFetches()
	for range 20 {
		postForged()
	}
	if got := a.op.JWKSFetches() - before; got != 0 {
		t.Errorf("forged logout tokens caused %d key set fetches", got)
	}
}

// The provider rotates its keys and then serves a broken key set while a
// session refreshes: the grant succeeded (the provider may have rotated the
// refresh token), so the new tokens are kept, the session is not ended,
// and the previous, verified ID token stays.
func TestFaultJWKSUnavailableAtRefresh(t *testing.T) {
	clock := &offsetClock{}
	op, front := frontedOP(t, oidctest.Config{Now: clock.Now})
	a := newApp(t, op, func(o *Options) {
		o.Now = clock.Now
		hooksOf(o).keysRefetchInterval = time.Millisecond
	})
	br, id := a.signInID(t)
	before := mustSession(t, a, id)
	op.RotateKeys()
	front.set("/jwks", oidctest.Garbage)
	clock.Advance(oidctest.DefaultAccessTokenTTL + time.Minute)
	time.Sleep(2 * time.Millisecond) // past keysRefetchInterval
	a.expect(t, br, "/api/me", 200, "refresh with a broken key set")
	after := mustSession(t, a, id)
	if after.rec.AccessToken == before.rec.AccessToken || !op.RefreshTokenValid(after.rec.RefreshToken) {
		t.Fatal("the refreshed tokens were not kept")
	}
	if after.rec.IDToken != before.rec.IDToken {
		t.Fatal("an ID token that could not be verified replaced the verified one")
	}
	if op.FamilyRevoked(after.rec.Subject) {
		t.Fatal("the token family was revoked")
	}
}
