package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobff/bff"
	"github.com/gobff/bff/internal/testsupport"
)

// needComponent reports a component the test cannot run without: a
// failure when CI is set, a skip otherwise.
func needComponent(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// nodeOP is panva's oidc-provider (oidcprovider/server.js) running in node.
type nodeOP struct {
	Issuer        string `json:"issuer"`
	Authorization string `json:"authorization_endpoint"`
	Token         string `json:"token_endpoint"`
	Revocation    string `json:"revocation_endpoint"`
	Introspection string `json:"introspection_endpoint"`
	EndSession    string `json:"end_session_endpoint"`
	PAR           string `json:"pushed_authorization_request_endpoint"`
}

// startNodeOP starts oidcprovider/server.js with these clients on a free
// port (another one if that was taken meanwhile), waits for its discovery
// document, and kills it at cleanup.
func startNodeOP(t *testing.T, clients []map[string]any) *nodeOP {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		needComponent(t, "node not found: install Node.js 20 or later (the machine image has it)")
	}
	dir, _ := filepath.Abs("oidcprovider")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider", "package.json")); err != nil {
		needComponent(t, "oidc-provider is not installed: run npm ci in interop/oidcprovider (scripts/test.sh does)")
	}
	for attempt := 1; ; attempt++ {
		issuer, logs, err := runNodeOP(t, node, dir, clients)
		if err == nil {
			op := &nodeOP{}
			getJSON(t, issuer+"/.well-known/openid-configuration", op)
			if op.Issuer != issuer {
				t.Fatalf("discovery issuer %q, want %q", op.Issuer, issuer)
			}
			return op
		}
		if attempt == 3 || !strings.Contains(logs.String(), "EADDRINUSE") {
			t.Fatalf("oidc-provider: %v\n%s", err, logs.String())
		}
	}
}

// runNodeOP runs server.js on a free port until the test ends, and returns
// its issuer once it listens, with its log.
func runNodeOP(t *testing.T, node, dir string, clients []map[string]any) (string, *testsupport.LogBuffer, error) {
	_, port, _ := net.SplitHostPort(testsupport.FreeAddr(t))
	issuer := "http://127.0.0.1:" + port
	cfg, _ := json.Marshal(map[string]any{"port": port, "issuer": issuer, "clients": clients,
		"acrValues": []string{acrBase, acrHigh}, "accessTokenTTL": accessTokenTTL / time.Second})
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "server.js", path)
	cmd.Dir = dir
	logs := &testsupport.LogBuffer{}
	cmd.Stderr = logs
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening, scanned, exited := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func(ready chan struct{}) {
		defer close(scanned)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "listening" && ready != nil {
				close(ready)
				ready = nil
			}
			logs.Write(append(sc.Bytes(), '\n'))
		}
	}(listening)
	go func() { <-scanned; cmd.Wait(); close(exited) }() // Wait after the last read of stdout
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() || testing.Verbose() {
			t.Logf("oidc-provider log:\n%s", logs.String())
		}
	})
	select {
	case <-listening:
		return issuer, logs, nil
	case <-exited:
		return "", logs, fmt.Errorf("exited: %v", cmd.ProcessState)
	case <-time.After(30 * time.Second):
		return "", logs, errors.New("not listening after 30 s")
	}
}

// introspect asks the provider whether token is active (RFC 7662), as the
// client secretClient.
func (op *nodeOP) introspect(t *testing.T, token string) bool {
	t.Helper()
	req, _ := http.NewRequest("POST", op.Introspection, strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(secretClient, clientSecret)
	var out struct {
		Active bool `json:"active"`
	}
	doJSON(t, req, http.StatusOK, &out)
	return out.Active
}

// refreshGrant presents a refresh token to the token endpoint as the
// client secretClient and returns the OAuth error code ("" on success).
func (op *nodeOP) refreshGrant(t *testing.T, rt string) string {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	req, _ := http.NewRequest("POST", op.Token, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(secretClient, clientSecret)
	var out struct {
		Error string `json:"error"`
	}
	doJSON(t, req, 0, &out)
	return out.Error
}

func doJSON(t *testing.T, req *http.Request, status int, v any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if status != 0 && resp.StatusCode != status {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: %d %.300s", req.Method, req.URL, resp.StatusCode, body)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
}

// providerCalls records bff's calls to the token and revocation endpoints
// (through Options.HTTPClient), so that the tests can tell which refresh
// token bff used, received and revoked, and how it authenticated. The
// tokens stay in the test: they are only compared and introspected.
type providerCalls struct {
	op   *nodeOP
	next http.RoundTripper

	mu        sync.Mutex
	issued    []string // refresh tokens in token responses, in order
	presented []string // refresh tokens sent to the refresh grant, in order
	revoked   []string // tokens sent to the revocation endpoint
	auth      []string // each token request's client authentication: "basic", "private_key_jwt", "secret_in_body"
}

func (pc *providerCalls) RoundTrip(req *http.Request) (*http.Response, error) {
	endpoint := strings.Split(req.URL.String(), "?")[0]
	if endpoint != pc.op.Token && endpoint != pc.op.Revocation {
		return pc.next.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	req = req.Clone(req.Context())
	req.Body = io.NopCloser(bytes.NewReader(body))
	form, _ := url.ParseQuery(string(body))
	resp, err := pc.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	if err != nil {
		return nil, err
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if endpoint == pc.op.Revocation {
		pc.revoked = append(pc.revoked, form.Get("token"))
		return resp, nil
	}
	switch _, _, basic := req.BasicAuth(); {
	case basic:
		pc.auth = append(pc.auth, "basic")
	case form.Get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" && form.Get("client_assertion") != "":
		pc.auth = append(pc.auth, "private_key_jwt")
	case form.Has("client_secret"):
		pc.auth = append(pc.auth, "secret_in_body")
	}
	if form.Get("grant_type") == "refresh_token" {
		pc.presented = append(pc.presented, form.Get("refresh_token"))
	}
	var tok struct {
		RefreshToken string `json:"refresh_token"`
	}
	if json.Unmarshal(respBody, &tok) == nil && tok.RefreshToken != "" {
		pc.issued = append(pc.issued, tok.RefreshToken)
	}
	return resp, nil
}

// snapshot returns copies of what was recorded.
func (pc *providerCalls) snapshot() (issued, presented, revoked, auth []string) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return append([]string(nil), pc.issued...), append([]string(nil), pc.presented...),
		append([]string(nil), pc.revoked...), append([]string(nil), pc.auth...)
}

// appServer is the app's one listener (its URL is registered at the
// provider before the provider starts); each subtest mounts its own bff
// app on it.
type appServer struct {
	URL         string
	handler     atomic.Pointer[http.Handler]
	backchannel atomic.Int32 // back-channel logout requests answered 200
}

func newAppServer(t *testing.T) *appServer {
	a := &appServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := a.handler.Load()
		if h == nil {
			http.NotFound(w, r)
			return
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		(*h).ServeHTTP(rec, r)
		if r.URL.Path == "/auth/backchannel-logout" && rec.status == http.StatusOK {
			a.backchannel.Add(1)
		}
	}))
	t.Cleanup(srv.Close)
	a.URL = "http://localhost:" + strings.TrimPrefix(srv.URL, "http://127.0.0.1:")
	return a
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// testApp is one bff app mounted on the app server.
type testApp struct {
	*bff.BFF
	URL    string
	calls  *providerCalls
	offset atomic.Int64 // added to the app's clock
}

// mountApp creates a bff app for the provider with opts (Issuer, BaseURL,
// HTTPClient, Now and Logger are filled in) and mounts it with the routes
// the tests use: /api/me and /api/stepup (acrHigh) behind RequireSession,
// /app (a page with a sign-out form) and / (home).
func mountApp(t *testing.T, srv *appServer, op *nodeOP, opts bff.Options) *testApp {
	t.Helper()
	app := &testApp{URL: srv.URL, calls: &providerCalls{op: op, next: http.DefaultTransport}}
	opts.Issuer, opts.BaseURL = op.Issuer, srv.URL
	opts.HTTPClient = &http.Client{Timeout: 10 * time.Second, Transport: app.calls}
	opts.Now = func() time.Time { return time.Now().Add(time.Duration(app.offset.Load())) }
	opts.Logger = appLogger(t)
	auth, err := bff.New(opts)
	if err != nil {
		t.Fatalf("bff.New: %v", err)
	}
	t.Cleanup(func() { auth.Close() })
	app.BFF = auth
	mux := http.NewServeMux()
	mux.Handle("/auth/", auth)
	mux.Handle("GET /api/me", auth.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := bff.UserFrom(r.Context())
		json.NewEncoder(w).Encode(map[string]string{"sub": u.Subject, "email": u.Email, "name": u.Name, "acr": u.ACR()})
	})))
	mux.Handle("GET /api/stepup", auth.RequireSession(auth.RequireAuthLevel([]string{acrHigh}, 0)(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, _ := bff.UserFrom(r.Context())
			json.NewEncoder(w).Encode(map[string]string{"acr": u.ACR()})
		}))))
	mux.HandleFunc("GET /app", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `<!doctype html><title>app</title><form method="post" action="/auth/logout"><button id="signout">Sign out</button></form>`)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `<!doctype html><title>home</title>`)
	})
	var h http.Handler = mux
	srv.handler.Store(&h)
	t.Cleanup(func() { srv.handler.Store(nil) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := auth.Ready(ctx); err != nil {
		t.Fatalf("bff discovery: %v", err)
	}
	return app
}

// appLogger is a bff app's logger: silent, or with -v at debug level into
// the test's log.
func appLogger(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(testsupport.TestWriter{T: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
