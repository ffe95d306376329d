package bfftest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobff/bff"
	"github.com/gobff/bff/bfftest"
)

// me answers the signed-in user and token as a host app's handler would.
var me = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	u, _ := bff.UserFrom(r.Context())
	tok, _ := bff.TokenFrom(r.Context())
	json.NewEncoder(w).Encode(map[string]any{"sub": u.Subject, "email": u.Email, "name": u.Name,
		"claims": u.Claims(), "acr": u.ACR(), "tokenType": tok.TokenType, "hasToken": tok.AccessToken != ""})
})

func TestWithUserIsWhatRequireSessionGives(t *testing.T) {
	user := bfftest.User{Subject: "u-1", Name: "Uma", Email: "uma@example.com",
		Claims: map[string]any{"groups": []string{"admin"}, "acr": "urn:mfa"}}
	r := httptest.NewRequest("GET", "/api/me", nil)
	r = r.WithContext(bfftest.WithUser(r.Context(), user, bff.Token{AccessToken: "at", TokenType: "Bearer",
		Expiry: time.Now().Add(time.Hour)}))
	w := httptest.NewRecorder()
	me.ServeHTTP(w, r)
	var got struct {
		Sub, Email, Name, ACR, TokenType string
		HasToken                         bool
		Claims                           map[string]any
	}
	json.Unmarshal(w.Body.Bytes(), &got)
	if got.Sub != "u-1" || got.Email != "uma@example.com" || got.Name != "Uma" || got.ACR != "urn:mfa" ||
		got.TokenType != "Bearer" || !got.HasToken {
		t.Fatalf("handler saw %+v", got)
	}
	if got.Claims["sub"] != "u-1" || got.Claims["email"] != "uma@example.com" || len(got.Claims["groups"].([]any)) != 1 {
		t.Fatalf("claims: %v", got.Claims)
	}
	if _, ok := bff.UserFrom(httptest.NewRequest("GET", "/", nil).Context()); ok {
		t.Fatal("a context without WithUser has a user")
	}
}

func TestWithUserRefusesClaimsThatAreNotJSON(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for a claim that does not marshal")
		}
	}()
	bfftest.WithUser(t.Context(), bfftest.User{Subject: "u", Claims: map[string]any{"c": make(chan int)}}, bff.Token{})
}

// app is a host app with its auth routes and a guarded /api/me; clock
// moves its time forward, to expire access tokens without waiting.
type app struct {
	*httptest.Server
	mu  sync.Mutex
	now time.Time
}

func (a *app) advance(d time.Duration) { a.mu.Lock(); a.now = a.now.Add(d); a.mu.Unlock() }
func (a *app) clock() time.Time        { a.mu.Lock(); defer a.mu.Unlock(); return a.now }

// newApp starts the host app, with a clock shared with its provider.
func newApp(t *testing.T, cfg bfftest.Config) (*app, *bfftest.Provider) {
	mux := http.NewServeMux()
	a := &app{Server: httptest.NewServer(mux), now: time.Now()}
	t.Cleanup(a.Close)
	cfg.Now = a.clock
	op := bfftest.NewProvider(cfg)
	t.Cleanup(op.Close)
	opts := op.Options(a.URL)
	opts.Now = a.clock
	auth, err := bff.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auth.Close() })
	if err := auth.Ready(t.Context()); err != nil {
		t.Fatal(err)
	}
	mux.Handle("/auth/", auth)
	mux.Handle("GET /api/me", auth.RequireSession(me))
	return a, op
}

func get(t *testing.T, c *http.Client, u string) (int, map[string]any) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func TestSignInThroughTheApp(t *testing.T) {
	bob := bfftest.User{Subject: "bob-7", Email: "bob@example.com", Claims: map[string]any{"groups": []string{"ops"}}}
	a, op := newApp(t, bfftest.Config{Users: []bfftest.User{{Subject: "alice-1"}, bob}})

	if code, m := get(t, op.SignIn(t, a.URL+"/auth"), a.URL+"/api/me"); code != 200 || m["sub"] != "alice-1" {
		t.Fatalf("first user: %d %v", code, m)
	}
	op.SignInAs(bob)
	code, m := get(t, op.SignIn(t, a.URL+"/auth"), a.URL+"/api/me")
	if code != 200 || m["sub"] != "bob-7" || m["email"] != "bob@example.com" ||
		!slices.Equal(m["claims"].(map[string]any)["groups"].([]any), []any{"ops"}) {
		t.Fatalf("SignInAs(bob): %d %v", code, m)
	}
	if code, _ := get(t, http.DefaultClient, a.URL+"/api/me"); code != 401 {
		t.Fatalf("no session: %d", code)
	}
}

func TestRefreshAndItsFailures(t *testing.T) {
	a, op := newApp(t, bfftest.Config{AccessTokenLifetime: 5 * time.Minute})
	br := op.SignIn(t, a.URL+"/auth")

	a.advance(10 * time.Minute)
	if code, _ := get(t, br, a.URL+"/api/me"); code != 200 || op.Refreshes() != 1 {
		t.Fatalf("expired access token: %d after %d refreshes, want 200 after 1", code, op.Refreshes())
	}
	a.advance(10 * time.Minute)
	op.FailRefresh(503, "")
	if code, _ := get(t, br, a.URL+"/api/me"); code != 503 {
		t.Fatalf("provider down: %d, want 503", code)
	}
	op.FailRefresh(400, "invalid_grant")
	if code, _ := get(t, br, a.URL+"/api/me"); code != 401 {
		t.Fatalf("refresh refused: %d, want 401", code)
	}
}

func TestSignOutRevokes(t *testing.T) {
	a, op := newApp(t, bfftest.Config{})
	br := op.SignIn(t, a.URL+"/auth")
	req, _ := http.NewRequest("POST", a.URL+"/auth/logout", nil)
	req.Header.Set("Origin", a.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	br.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := br.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code, _ := get(t, br, a.URL+"/api/me"); code != 401 || op.Revocations() == 0 {
		t.Fatalf("after sign-out: %d, %d revocations", code, op.Revocations())
	}
}

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, as a failing test's would.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestSignInFailsTheTestWhenTheAppRefuses(t *testing.T) {
	op := bfftest.NewProvider(bfftest.Config{})
	t.Cleanup(op.Close)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		op.SignIn(rec, down.URL+"/auth")
	}()
	<-done
	if !strings.Contains(rec.msg, "ended with 503") {
		t.Fatalf("SignIn against an app answering 503: %q, want a failure naming the 503", rec.msg)
	}
}
