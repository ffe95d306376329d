package bff

import (
	"strings"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
)

func TestSignedOutSessionEndpoint(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), nil)
	br := newBrowser(t)
	code, body := a.status(br, "GET", "/auth/session")
	if code != 401 || !strings.Contains(body, "unauthenticated") {
		t.Fatalf("= %d %s", code, body)
	}
}

func TestLogoutSessionEndpointHasLogoutURL(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), func(o *Options) { o.IdleTimeout = time.Hour })
	br := a.signIn(t)
	code, body := a.status(br, "GET", "/auth/session")
	m := jsonBody(t, body)
	in, _ := m["expiresIn"].(float64)
	if code != 200 || m["logoutUrl"] != "/auth/logout" || in <= 3500 || in > 3600 {
		t.Fatalf("/auth/session = %d %s; want logoutUrl /auth/logout and expiresIn about 3600", code, body)
	}
	for _, tok := range []string{"access", "refresh", "id_token", "eyJ"} {
		if strings.Contains(body, tok) {
			t.Errorf("/auth/session mentions %q", tok)
		}
	}
}
