package bff

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/record"
	"github.com/gobff/bff/internal/redirect"
	"github.com/gobff/bff/internal/seal"
	"github.com/gobff/bff/internal/testsupport"
)

// Fuzz targets for every parser of untrusted input in package bff: the
// callback's query, the login-transaction cookie, sealed session records
// read back from the store, and back-channel logout tokens. (returnTo, the
// record layout and the key set have their own targets in internal/.)
//
// Each iteration calls the handlers in-process (no network) except where a
// genuine input legitimately reaches the provider. Run one for longer with
//
//	go test -run '^$' -fuzz '^FuzzCallbackQuery$' -fuzztime 10m .

// redirectAttacks are the open-redirect payloads that every layer taking a
// return path must refuse: internal/redirect's table, a Go-quoted string a
// line.
func redirectAttacks(t testing.TB) []string {
	return testsupport.QuotedLines(t, "internal/redirect/testdata/attacks.txt")
}

// callbackAttacks are callback queries; {code}, {state} and {iss} stand
// for the genuine values of the sign-in in progress.
var callbackAttacks = []string{
	"code={code}&state={state}&iss={iss}", // the genuine response
	"",
	"state={state}",             // no code
	"code={code}",               // no state: login CSRF
	"code={code}&state={state}", // iss dropped although advertised (mix-up)
	"code={code}&state={state}&iss=https%3A%2F%2Fevil.example", // another issuer (mix-up)
	"code={code}&state={state}&iss={iss}&iss=https%3A%2F%2Fevil.example",
	"code={code}&state={state}&iss={iss}&iss={iss}",
	"code={code}&state=AAAAAAAAAAAAAAAAAAAAAAAAAA&iss={iss}", // another sign-in's state
	"code={code}&state={state}x&iss={iss}",
	"code=injected-code&state={state}&iss={iss}", // code injection
	"code={code}&code=other&state={state}&iss={iss}",
	"code={code}&state={state}&state=AAAAAAAAAAAAAAAAAAAAAAAAAA&iss={iss}",
	"error=access_denied&state={state}",
	"error=%3Cscript%3Ealert(1)%3C%2Fscript%3E&state={state}",
	"error=server_error&error_description=%0d%0aSet-Cookie:%20x=y&state={state}",
	"code={code};state={state};iss={iss}",
	"code={code}&state={state}&iss={iss}&returnTo=//evil.example",
	"%zz&code={code}&state={state}&iss={iss}",
	"code=%00&state=%00&iss=%00",
	"state=" + strings.Repeat("A", 4096),
	"code=" + strings.Repeat("a", 70000) + "&state={state}&iss={iss}",
	"code={code}&state={state}&iss=http%3A%2F%2Flocalhost",
}

// serveInProcess runs one request through h. rawQuery is set after the
// request is built, so that any bytes reach the handler.
func serveInProcess(h http.Handler, method, path, rawQuery string, body io.Reader, header http.Header) *http.Response {
	req := httptest.NewRequest(method, path, body)
	req.URL.RawQuery = rawQuery
	for k, v := range header {
		req.Header[k] = v
	}
	if host := header.Get("Host"); host != "" {
		req.Host = host // as the browser sends it
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

// serveLogin runs /auth/login in-process, sent to BaseURL's host as a
// browser sends it (/login on another host redirects there first).
func (a *app) serveLogin(rawQuery string, header http.Header) *http.Response {
	h := http.Header{"Host": {strings.TrimPrefix(a.URL, "http://")}}
	for k, v := range header {
		h[k] = v
	}
	return serveInProcess(a.bff, "GET", "/auth/login", rawQuery, nil, h)
}

// signIn is a sign-in in progress: the transaction cookie /login set and,
// once the provider approved it, the genuine callback parameters.
type signIn struct {
	state, txName, txValue string
	code, iss              string
}

// startSignIn runs /login in-process; ok is false when /login refused
// returnTo.
func startSignIn(t testing.TB, a *app, returnTo string) (s signIn, authorize string, ok bool) {
	t.Helper()
	q := ""
	if returnTo != "" {
		q = "returnTo=" + url.QueryEscape(returnTo)
	}
	resp := a.serveLogin(q, nil)
	if resp.StatusCode != http.StatusSeeOther {
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("/login?%s = %d", q, resp.StatusCode)
		}
		return s, "", false
	}
	authorize = resp.Header.Get("Location")
	if u, err := url.Parse(authorize); err == nil {
		s.state = u.Query().Get("state")
	}
	for _, c := range resp.Cookies() {
		if strings.HasPrefix(c.Name, a.bff.txPrefix()) && c.MaxAge > 0 {
			s.txName, s.txValue = c.Name, c.Value
		}
	}
	if slot, ok := txSlot(s.state); !ok || s.txName != a.bff.txName(slot) {
		t.Fatalf("/login set no transaction cookie for state %q (cookie %q)", s.state, s.txName)
	}
	return s, authorize, true
}

// approveSignIn runs the provider's /authorize in-process and fills in the
// genuine callback parameters.
func approveSignIn(t testing.TB, op *oidctest.Provider, s *signIn, authorize string) {
	t.Helper()
	rec := httptest.NewRecorder()
	op.ServeHTTP(rec, httptest.NewRequest("GET", authorize, nil))
	loc, err := url.Parse(rec.Header().Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("authorize = %d %q", rec.Code, rec.Header().Get("Location"))
	}
	s.code, s.iss = loc.Query().Get("code"), loc.Query().Get("iss")
}

func (s signIn) cookieHeader() http.Header {
	return http.Header{"Cookie": {s.txName + "=" + s.txValue}}
}

// checkSameOrigin fails when a response redirects off the app's origin.
func checkSameOrigin(t *testing.T, a *app, resp *http.Response) {
	t.Helper()
	loc := resp.Header.Get("Location")
	if loc == "" {
		return
	}
	base, _ := url.Parse(a.URL + "/auth/callback")
	u, err := base.Parse(loc)
	if err != nil {
		t.Fatalf("Location %q does not parse: %v", loc, err)
	}
	if u.Scheme+"://"+u.Host != a.URL || u.User != nil || strings.ContainsAny(loc, "\\\t\r\n") || strings.HasPrefix(loc, "//") {
		t.Fatalf("redirect off the origin: Location %q", loc)
	}
}

// redirectLocation is the Location the callback writes for returnTo:
// /login keeps it with its dot segments resolved, and http.Redirect cleans
// the path; "" is the default "/".
func redirectLocation(returnTo string) string {
	returnTo, _ = redirect.Path(returnTo)
	if returnTo == "" {
		returnTo = "/"
	}
	rec := httptest.NewRecorder()
	http.Redirect(rec, httptest.NewRequest("GET", "/auth/callback", nil), returnTo, http.StatusSeeOther)
	return rec.Header().Get("Location")
}

// checkNo500: no 5xx except 503.
func checkNo500(t *testing.T, resp *http.Response, what string) {
	t.Helper()
	if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s: status %d %s", what, resp.StatusCode, body)
	}
}

// sessionIDSet returns the session ID the response set, if any.
func sessionIDSet(a *app, resp *http.Response) (string, bool) {
	for _, c := range resp.Cookies() {
		if c.Name == a.bff.cfg.CookieName && c.Value != "" && c.MaxAge >= 0 {
			return c.Value, true
		}
	}
	return "", false
}

// fuzzApp is the app of a fuzz target: ES256 keys (cheap to sign), a login
// timeout longer than any fuzz run.
func fuzzApp(f *testing.F, opt func(*Options)) (*oidctest.Provider, *app) {
	a := newApp(f, testOP(f, oidctest.Config{SigningAlg: "ES256"}), func(o *Options) {
		o.LoginTimeout = 24 * time.Hour
		// Not the test log: the *F must not be used inside the fuzz function.
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		if opt != nil {
			opt(o)
		}
	})
	return a.op, a
}

// FuzzCallbackQuery sends arbitrary callback queries, with and without the
// browser's transaction cookie, for a sign-in started with an arbitrary
// returnTo. Properties: no panic; no 5xx but 503; no redirect off the
// origin; every answer has CSP frame-ancestors 'none' and no-store; a
// session is created only when the query carries the genuine
// state and code and the browser the genuine cookie (and then always for
// the genuine response).
func FuzzCallbackQuery(f *testing.F) {
	for _, q := range callbackAttacks {
		f.Add("/app", q, true)
		f.Add("/app", q, false)
	}
	// Open-redirect payloads and valid paths, so the fuzzer starts from
	// both sides.
	for _, rt := range append(redirectAttacks(f), "/app", "/app?x=1#y", "/?next=//evil.example",
		"/a/%2e%2e/app", "/a/./b/../app?x=/../y") {
		f.Add(rt, callbackAttacks[0], true)
	}
	op, a := fuzzApp(f, nil)
	f.Fuzz(func(t *testing.T, returnTo, query string, withCookie bool) {
		s, authorize, ok := startSignIn(t, a, returnTo)
		if !ok {
			returnTo = "/app"
			s, authorize, _ = startSignIn(t, a, returnTo)
		}
		approveSignIn(t, op, &s, authorize)
		raw := strings.NewReplacer("{code}", url.QueryEscape(s.code), "{state}", s.state,
			"{iss}", url.QueryEscape(s.iss)).Replace(query)
		var hdr http.Header
		if withCookie {
			hdr = s.cookieHeader()
		}
		defer a.mem().Delete(a.bff.sealer.Name("state", s.state)) // bound the store in long runs
		before := op.CodeGrants()
		resp := serveInProcess(a.bff, "GET", "/auth/callback", raw, nil, hdr)
		checkNo500(t, resp, "callback")
		checkSameOrigin(t, a, resp)
		if resp.Header.Get("Content-Security-Policy") != "frame-ancestors 'none'" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("callback response without CSP frame-ancestors 'none' and no-store: %v", resp.Header)
		}

		id, created := sessionIDSet(a, resp)
		q, _ := url.ParseQuery(raw)
		genuine := withCookie && q.Get("state") == s.state && q.Get("code") == s.code && q.Get("error") == ""
		if created && !genuine {
			t.Fatalf("a session was created for a non-genuine callback %q (cookie %v)", raw, withCookie)
		}
		if op.CodeGrants() != before && !(withCookie && q.Get("state") == s.state) {
			t.Fatalf("the code was redeemed for a callback without this browser's sign-in: %q", raw)
		}
		if query == callbackAttacks[0] && withCookie && !created {
			t.Fatalf("the genuine callback did not sign in: %d", resp.StatusCode)
		}
		if created {
			sess, err := a.bff.store.read(context.Background(), recordName(id))
			if err != nil || sess.rec.Subject != oidctest.DefaultUser.Subject {
				t.Fatalf("created session does not read back: %v", err)
			}
			if want := redirectLocation(returnTo); resp.Header.Get("Location") != want {
				t.Fatalf("signed in, redirected to %q, want %q", resp.Header.Get("Location"), want)
			}
			a.bff.store.end(context.Background(), sess.key, endRevoked) // keep the store small
		}
	})
}

// FuzzTxCookie feeds the login-transaction cookie decoder garbage, base64
// of garbage, bit-flipped and truncated genuine cookies, another sign-in's
// genuine cookie, and garbage Cookie headers. Property: only the genuine
// sealed bytes under their own name open (observed as the code reaching
// the provider's token endpoint); nothing panics or answers 5xx but 503.
func FuzzTxCookie(f *testing.F) {
	f.Add([]byte("garbage"), uint16(0), byte(0), uint16(0), uint8(0))
	f.Add([]byte{}, uint16(0), byte(0), uint16(0), uint8(2)) // the genuine cookie: must open
	f.Add([]byte{}, uint16(5), byte(1), uint16(0), uint8(2))
	f.Add([]byte{}, uint16(0), byte(0x80), uint16(0), uint8(2))
	f.Add([]byte{}, uint16(0), byte(0), uint16(1), uint8(2))
	f.Add([]byte{}, uint16(0), byte(0), uint16(40), uint8(2))
	f.Add([]byte{}, uint16(0), byte(0), uint16(0), uint8(3))
	f.Add([]byte("AAAA"), uint16(0), byte(0), uint16(0), uint8(1))
	f.Add(bytes.Repeat([]byte{0}, 64), uint16(0), byte(0), uint16(0), uint8(1))
	f.Add([]byte(`"quoted"; __Host-bff-tx-x=y; =; ;;`), uint16(0), byte(0), uint16(0), uint8(4))
	f.Add([]byte("%00\r\n"), uint16(0), byte(0), uint16(0), uint8(0))
	op, a := fuzzApp(f, nil)
	f.Fuzz(func(t *testing.T, raw []byte, at uint16, mask byte, cut uint16, mode uint8) {
		s, authorize, _ := startSignIn(t, a, "/app")
		approveSignIn(t, op, &s, authorize)
		genuine, err := base64.RawURLEncoding.DecodeString(s.txValue)
		if err != nil {
			t.Fatal(err)
		}
		var hdr http.Header
		switch mode % 5 {
		case 0: // garbage as the cookie value
			hdr = http.Header{"Cookie": {s.txName + "=" + string(raw)}}
		case 1: // base64 of garbage: reaches the AEAD
			hdr = http.Header{"Cookie": {s.txName + "=" + base64.RawURLEncoding.EncodeToString(raw)}}
		case 2: // the genuine cookie, bit-flipped and/or truncated
			sealed := bytes.Clone(genuine)
			if mask != 0 {
				sealed[int(at)%len(sealed)] ^= mask
			}
			if cut != 0 {
				sealed = sealed[:int(cut)%len(sealed)]
			}
			hdr = http.Header{"Cookie": {s.txName + "=" + base64.RawURLEncoding.EncodeToString(sealed)}}
		case 3: // another sign-in's genuine cookie under this state's name
			other, _, _ := startSignIn(t, a, "/app")
			hdr = http.Header{"Cookie": {s.txName + "=" + other.txValue}}
		case 4: // a garbage Cookie header
			hdr = http.Header{"Cookie": {string(raw)}}
		}
		defer a.mem().Delete(a.bff.sealer.Name("state", s.state)) // bound the store in long runs
		before := op.CodeGrants()
		// A wrong code: the callback gets as far as the token endpoint
		// only if the cookie opened; nothing is signed in either way.
		query := "code=wrong-" + url.QueryEscape(s.code) + "&state=" + s.state + "&iss=" + url.QueryEscape(s.iss)
		resp := serveInProcess(a.bff, "GET", "/auth/callback", query, nil, hdr)
		checkNo500(t, resp, "callback")
		if _, created := sessionIDSet(a, resp); created {
			t.Fatal("a session was created with a wrong code")
		}
		opened := op.CodeGrants() != before
		// The bytes the decoder saw: the cookie's value, base64-decoded.
		v, _ := cookieValue(hdr, s.txName)
		presented, _ := base64.RawURLEncoding.DecodeString(v)
		isGenuine := bytes.Equal(presented, genuine)
		if opened && !isGenuine {
			t.Fatalf("a non-genuine transaction cookie opened (mode %d)", mode%5)
		}
		if mode%5 == 2 && mask == 0 && cut == 0 && !opened {
			t.Fatalf("the genuine transaction cookie did not open: %d", resp.StatusCode)
		}
	})
}

// FuzzSessionRecord stores garbage, bit-flipped and truncated genuine
// sealed records, a genuine record under another key, and garbage
// plaintexts sealed with the real key, and reads them through b.read (and
// the API, for records that open). Properties: only the genuine sealed
// record opens; garbage never panics; a record that opens decodes.
func FuzzSessionRecord(f *testing.F) {
	f.Add([]byte("garbage"), uint16(0), byte(0), uint16(0), uint8(0))
	f.Add([]byte{}, uint16(0), byte(0), uint16(0), uint8(1)) // genuine: must open
	f.Add([]byte{}, uint16(3), byte(1), uint16(0), uint8(1))
	f.Add([]byte{}, uint16(100), byte(0xff), uint16(0), uint8(1))
	f.Add([]byte{}, uint16(0), byte(0), uint16(12), uint8(1))
	f.Add([]byte{}, uint16(0), byte(0), uint16(0), uint8(2))
	f.Add([]byte{record.Version}, uint16(0), byte(0), uint16(0), uint8(3))
	f.Add([]byte{record.Version, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, uint16(0), byte(0), uint16(0), uint8(3))
	f.Add([]byte{}, uint16(0), byte(0), uint16(0), uint8(4)) // the genuine plaintext, sealed again
	f.Add([]byte(`{"claims":null}`), uint16(0), byte(0), uint16(0), uint8(4))
	_, a := fuzzApp(f, nil)
	_, id := a.signInID(f)
	key := recordName(id)
	ctx := context.Background()
	genuine, found, err := a.mem().Find(key)
	if err != nil || !found {
		f.Fatalf("no session record: %v", err)
	}
	plain, err := a.bff.sealer.Open(nil, seal.PurposeSession, genuine, []byte(key))
	if err != nil {
		f.Fatal(err)
	}
	otherKey := recordName("AAAAAAAAAAAAAAAAAAAAAAAAAA")
	exp := time.Now().Add(time.Hour)
	api := a.bff.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := UserFrom(r.Context()); !ok {
			w.WriteHeader(http.StatusTeapot)
		}
	}))

	f.Fuzz(func(t *testing.T, raw []byte, at uint16, mask byte, cut uint16, mode uint8) {
		defer func() {
			a.mem().Commit(key, genuine, exp)
			a.mem().Delete(otherKey)
			a.bff.store.cache.drop(key)
		}()
		readKey, value, mayOpen := key, raw, false
		switch mode % 5 {
		case 0: // garbage where a sealed record belongs
		case 1: // the genuine sealed record, bit-flipped and/or truncated
			value = bytes.Clone(genuine)
			if mask != 0 {
				value[int(at)%len(value)] ^= mask
			}
			if cut != 0 {
				value = value[:int(cut)%len(value)]
			}
			mayOpen = mask == 0 && cut == 0
		case 2: // the genuine record moved to another session's key
			readKey, value = otherKey, genuine
		case 3: // garbage plaintext, sealed with the real key
			value = a.bff.sealer.Seal(nil, seal.PurposeSession, raw, []byte(key))
			mayOpen = true
		case 4: // the genuine plaintext with garbage appended, sealed with the real key
			p := append(bytes.Clone(plain), raw...)
			value = a.bff.sealer.Seal(nil, seal.PurposeSession, p, []byte(key))
			mayOpen = true
		}
		a.mem().Commit(readKey, value, exp)
		a.bff.store.cache.drop(readKey)
		s, err := a.bff.store.read(ctx, readKey)
		if err != nil && err != errNotFound {
			t.Fatalf("read: %v", err)
		}
		if err == nil && !mayOpen {
			t.Fatalf("a non-genuine record opened (mode %d)", mode%5)
		}
		if mode%5 == 1 && mayOpen && err != nil {
			t.Fatal("the genuine record did not open")
		}
		if err != nil {
			return
		}
		if s.key != readKey {
			t.Fatalf("read returned the session of key %q for %q", s.key, readKey)
		}
		// A record that opens goes through the API: whatever its fields,
		// the answer is 200, 401 or 503, never a panic.
		resp := serveInProcess(api, "GET", "/api/me", "", nil, http.Header{"Cookie": {a.bff.cfg.CookieName + "=" + id}})
		switch resp.StatusCode {
		case http.StatusOK, http.StatusUnauthorized, http.StatusServiceUnavailable:
		default:
			t.Fatalf("/api/me with a decoded record = %d", resp.StatusCode)
		}
	})
}

// logoutEdits seed FuzzLogoutToken's claim edits (mode 8): the members
// replace the genuine claims, "-" deletes one, and numbers for iat, exp and
// nbf are seconds from now.
var logoutEdits = []string{
	`{}`, `{"exp":"-"}`, `{"exp":"-","sub":"-"}`, `{"iat":"-"}`, `{"iat":31536000,"exp":31536120}`, `{"iat":120}`,
	`{"exp":315360000}`, `{"iat":-660,"exp":315360000}`, `{"exp":"-","iat":-180}`, `{"events":null}`, `{"events":[]}`,
	`{"events":{"http://schemas.openid.net/event/backchannel-logout":null}}`,
	`{"events":{"http://schemas.openid.net/event/backchannel-logout":[]}}`,
	`{"events":{"HTTP://SCHEMAS.OPENID.NET/EVENT/BACKCHANNEL-LOGOUT":{}}}`, `{"nonce":null}`, `{"nbf":600}`,
	`{"sid":42}`, `{"sub":42}`, `{"jti":""}`, `{"jti":7}`, `{"iss":"-"}`, `{"aud":"-"}`, `{"aud":[]}`, `{"iat":"now"}`,
}

// FuzzLogoutToken posts arbitrary logout tokens and bodies, and mutated,
// expired, replayed and foreign genuine tokens, genuinely signed tokens
// with edited claims, and genuine ones with any typ header, to the
// back-channel logout endpoint. Properties: no 5xx but 503; a session ends
// only for a genuine, fresh, first-used token of its sid (a mutation that
// decodes to the same bytes is the same token) whose claims and typ obey
// Back-Channel Logout 1.0 (validLogoutClaims).
func FuzzLogoutToken(f *testing.F) {
	f.Add("", uint8(0), uint16(0), byte(0))
	f.Add("", uint8(2), uint16(0), byte(0)) // the genuine token: must end the session
	for _, s := range []string{
		"x", "a.b.c", "..", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", // alg none
		"eyJhbGciOiJIUzI1NiJ9.e30.AAAA",                       // HS256
		"eyJhbGciOiJFUzI1NiIsImtpZCI6InVua25vd24ifQ.e30.AAAA", // unknown kid
		strings.Repeat("A", 70000), "logout_token=%zz", "logout_token=a&logout_token=b", "%",
	} {
		f.Add(s, uint8(0), uint16(0), byte(0))
		f.Add(s, uint8(1), uint16(0), byte(0))
	}
	for m := uint8(2); m < 8; m++ {
		f.Add("", m, uint16(7), byte(1))
		f.Add("", m, uint16(0), byte(0))
	}
	for _, e := range logoutEdits {
		f.Add(e, uint8(8), uint16(0), byte(0))
	}
	for _, typ := range []string{"", "logout+jwt", "JWT", "application/logout+jwt", "LOGOUT+JWT", "at+jwt", "secevent+jwt", "jwt "} {
		f.Add(typ, uint8(9), uint16(0), byte(0))
	}
	op, a := fuzzApp(f, nil)
	ctx := context.Background()
	type live struct {
		key, sub, sid string
	}
	newLive := func(t testing.TB) live {
		at := &app{t: t, bff: a.bff, srv: a.srv, op: a.op, URL: a.URL}
		_, id := at.signInID(t)
		s, err := a.bff.store.read(ctx, recordName(id))
		if err != nil || s.rec.SID == "" {
			t.Fatalf("session: %v (sid %q)", err, s.rec.SID)
		}
		return live{recordName(id), s.rec.Subject, s.rec.SID}
	}
	cur := newLive(f)
	post := func(body string) *http.Response {
		return serveInProcess(a.bff, "POST", "/auth/backchannel-logout", "", strings.NewReader(body),
			http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	}
	ended := func() bool {
		_, err := a.bff.store.read(ctx, cur.key)
		return err == errNotFound
	}

	f.Fuzz(func(t *testing.T, raw string, mode uint8, at uint16, mask byte) {
		var body string
		allowed := false // whether this token may end the session
		var genuine string
		switch mode % 10 {
		case 0:
			body = "logout_token=" + url.QueryEscape(raw)
		case 1:
			body = raw
		case 2, 3: // genuine (mode 3: sub only), maybe mutated
			sid := cur.sid
			if mode%10 == 3 {
				sid = ""
			}
			genuine = op.LogoutToken(cur.sub, sid, nil)
			tok := []byte(genuine)
			if mask != 0 {
				tok[int(at)%len(tok)] ^= mask
			}
			body = "logout_token=" + url.QueryEscape(string(tok))
			allowed = sameJWS(string(tok), genuine)
		case 4: // genuine but expired
			body = "logout_token=" + op.LogoutToken(cur.sub, cur.sid, func(c map[string]any) {
				c["iat"] = time.Now().Add(-time.Hour).Unix()
				c["exp"] = time.Now().Add(-30 * time.Minute).Unix()
			})
		case 5: // genuine, for another sid of the same user
			body = "logout_token=" + op.LogoutToken(cur.sub, "other-"+cur.sid, nil)
		case 6: // genuine for another user
			body = "logout_token=" + op.LogoutToken("mallory", "", nil)
		case 7: // genuine, used once, then replayed against a new session
			tok := op.LogoutToken(cur.sub, cur.sid, nil)
			if resp := post("logout_token=" + tok); resp.StatusCode != http.StatusOK || !ended() {
				t.Fatalf("first use of a genuine token = %d, session ended %v", resp.StatusCode, ended())
			}
			cur = newLive(t)
			body = "logout_token=" + tok
		case 8: // genuinely signed, claims edited by raw (see logoutEdits)
			claims, ok := editLogoutClaims(claimsOf(op, cur.sub, cur.sid), raw)
			if !ok {
				return
			}
			body = "logout_token=" + op.SignJWT(claims, oidctest.SignOptions{Typ: "logout+jwt"})
			allowed = validLogoutClaims(claims, op.Issuer(), op.ClientID(), cur.sub, cur.sid, time.Now())
		case 9: // genuine claims, typ raw ("" for none)
			body = "logout_token=" + op.SignJWT(claimsOf(op, cur.sub, cur.sid), oidctest.SignOptions{Typ: raw, NoTyp: raw == ""})
			switch strings.ToLower(raw) {
			case "", "jwt", "logout+jwt", "application/logout+jwt":
				allowed = true
			}
		}
		resp := post(body)
		checkNo500(t, resp, "backchannel-logout")
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusBadRequest &&
			resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("backchannel-logout = %d", resp.StatusCode)
		}
		if ended() {
			if !allowed {
				t.Fatalf("a session was ended by a non-genuine, invalid, stale or replayed token (mode %d, %q)", mode%10, raw)
			}
			cur = newLive(t)
		} else if mode%10 == 2 && mask == 0 {
			t.Fatalf("the genuine logout token did not end the session: %d", resp.StatusCode)
		}
	})
}

// sameJWS reports whether two compact JWS decode to the same bytes (base64
// decoding ignores the unused bits of the last character).
func sameJWS(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	if len(pa) != 3 || len(pb) != 3 {
		return false
	}
	for i := range pa {
		da, err1 := base64.RawURLEncoding.DecodeString(pa[i])
		db, err2 := base64.RawURLEncoding.DecodeString(pb[i])
		if err1 != nil || err2 != nil || !bytes.Equal(da, db) {
			return false
		}
	}
	return true
}

// editLogoutClaims applies FuzzLogoutToken's edits (see logoutEdits) and
// returns the claims as JSON decodes them (numbers as float64).
func editLogoutClaims(claims map[string]any, raw string) (map[string]any, bool) {
	var edits map[string]any
	if json.Unmarshal([]byte(raw), &edits) != nil {
		return nil, false
	}
	now := time.Now().Unix()
	for k, v := range edits {
		n, isNum := v.(float64)
		switch {
		case v == "-":
			delete(claims, k)
		case isNum && (k == "iat" || k == "exp" || k == "nbf"):
			claims[k] = now + int64(max(min(n, 1e10), -1e10))
		default:
			claims[k] = v
		}
	}
	b, _ := json.Marshal(claims)
	var out map[string]any
	return out, json.Unmarshal(b, &out) == nil
}

// validLogoutClaims is what FuzzLogoutToken holds an accepted token's
// claims to, written apart from logouttoken.go: Back-Channel Logout 1.0
// §2.4 and §2.6 with bff's bounds (iat at most 1 minute ahead; accepted 2
// minutes after iat without exp, until exp but at most 10 minutes after iat
// with one), a few seconds' slack, and a sid or sub of the live session.
func validLogoutClaims(c map[string]any, iss, client, sub, sid string, now time.Time) bool {
	const slack = 5
	t := float64(now.Unix())
	num := func(k string) (float64, bool, bool) { // value, present, valid
		v, present := c[k]
		n, ok := v.(float64)
		return n, present, !present || ok
	}
	str := func(k string) (string, bool) { // value, valid (a string or absent)
		v, present := c[k]
		s, ok := v.(string)
		return s, !present || ok
	}
	if _, ok := c["nonce"]; ok || c["iss"] != iss {
		return false
	}
	switch aud := c["aud"].(type) {
	case string:
		if aud != client {
			return false
		}
	case []any:
		if !slices.Contains(aud, any(client)) {
			return false
		}
	default:
		return false
	}
	events, _ := c["events"].(map[string]any)
	if _, ok := events["http://schemas.openid.net/event/backchannel-logout"].(map[string]any); !ok {
		return false
	}
	iat, hasIat, ok1 := num("iat")
	exp, hasExp, ok2 := num("exp")
	nbf, _, ok3 := num("nbf")
	jti, ok4 := str("jti")
	s, ok5 := str("sub")
	d, ok6 := str("sid")
	switch {
	case !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || !hasIat || jti == "":
		return false
	case iat > t+60+slack || nbf > t+60+slack:
		return false
	case hasExp && (exp < t-slack || iat < t-600-slack), !hasExp && iat < t-120-slack:
		return false
	}
	return d == sid && (s == "" || s == sub) || d == "" && s == sub
}
