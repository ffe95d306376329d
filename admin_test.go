package bff

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/redistest"
)

func TestRevokeSessionsListsAndEndsEverywhere(t *testing.T) {
	rs := redistest.Start(t)
	op := testOP(t, twoUsers())
	var clk offsetClock
	apps := redisApps(t, op, rs, 2, func(o *Options) { o.Now = clk.Now })
	a, b := apps[0], apps[1]
	ctx := context.Background()
	sub := oidctest.DefaultUser.Subject

	alice1 := loginAs(a, oidctest.DefaultUser)
	clk.Advance(2 * time.Minute)
	alice2 := loginAs(a, oidctest.DefaultUser)
	bobBr := loginAs(a, bob)
	waitHealthy(t, a)
	waitHealthy(t, b)
	// Each browser uses its own instance (and has its session cached).
	signedIn(t, a, alice1)
	signedIn(t, b, alice2)
	signedIn(t, b, bobBr)

	list, err := b.bff.Sessions(ctx, sub)
	if err != nil || len(list) != 2 {
		t.Fatalf("Sessions = %+v, %v; want 2", list, err)
	}
	now := clk.Now()
	cookies := []string{}
	for _, br := range []*browser{alice1, alice2} {
		id, _ := a.sessionCookie(br)
		cookies = append(cookies, id)
	}
	for _, si := range list {
		if si.Created.IsZero() || si.LastSeen.Before(si.Created) || !si.Expires.After(now) || si.Created.After(now) {
			t.Errorf("session info %+v (now %v)", si, now)
		}
		for _, c := range cookies {
			if strings.Contains(si.Handle, c) {
				t.Error("the handle contains the cookie value")
			}
		}
	}
	if list[0].Created.Equal(list[1].Created) {
		t.Error("both sessions have the same creation time")
	}
	// No token can be reached through SessionInfo.
	typ := reflect.TypeFor[SessionInfo]()
	for i := range typ.NumField() {
		if f := typ.Field(i); f.Type.Kind() != reflect.String && f.Type != reflect.TypeFor[time.Time]() {
			t.Errorf("SessionInfo.%s has type %v", f.Name, f.Type)
		}
	}
	if bl, _ := a.bff.Sessions(ctx, bob.Subject); len(bl) != 1 {
		t.Fatalf("bob's sessions = %d", len(bl))
	}

	n, err := a.bff.RevokeSessions(ctx, sub)
	if err != nil || n != 2 {
		t.Fatalf("RevokeSessions = %d, %v; want 2", n, err)
	}
	expect401Within(t, a, alice1, "/api/me", 100*time.Millisecond)
	expect401Within(t, b, alice2, "/api/me", 100*time.Millisecond)
	expectSignedIn(t, b, bobBr, true, "bob's session ended")
	if list, _ := b.bff.Sessions(ctx, sub); len(list) != 0 {
		t.Fatalf("Sessions after RevokeSessions = %d", len(list))
	}

	// RevokeSession ends one session by its handle.
	bl, _ := b.bff.Sessions(ctx, bob.Subject)
	if err := a.bff.RevokeSession(ctx, bl[0].Handle); err != nil {
		t.Fatal(err)
	}
	expect401Within(t, b, bobBr, "/api/me", 100*time.Millisecond)
	if err := a.bff.RevokeSession(ctx, "not a handle"); err == nil {
		t.Error("RevokeSession accepted a malformed handle")
	}
	assertNoKEYS(t, rs)
}

// With the memory store, sessions past their expiry are neither listed nor
// indexed.
func TestRevokeSessionsIndexEmptyAfterExpiry(t *testing.T) {
	op := testOP(t, oidctest.Config{})
	var clk offsetClock
	a := newApp(t, op, func(o *Options) { o.Now = clk.Now })
	ctx := context.Background()
	sub := oidctest.DefaultUser.Subject
	a.login(newBrowser(t))
	a.login(newBrowser(t))
	if list, _ := a.bff.Sessions(ctx, sub); len(list) != 2 {
		t.Fatalf("Sessions = %d, want 2", len(list))
	}
	clk.Advance(a.bff.cfg.MaxLifetime + time.Second)
	if list, err := a.bff.Sessions(ctx, sub); err != nil || len(list) != 0 {
		t.Fatalf("Sessions after expiry = %v, %v", list, err)
	}
	if keys, err := a.bff.store.members(ctx, "sub", sub); err != nil || len(keys) != 0 {
		t.Fatalf("index after expiry = %q, %v", keys, err)
	}
	if n, err := a.bff.RevokeSessions(ctx, sub); err != nil || n != 0 {
		t.Fatalf("RevokeSessions after expiry = %d, %v", n, err)
	}
}
