package bff

import (
	"cmp"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ProxyOptions configures Proxy. The zero value gives the defaults; a
// mistake (a negative timeout, a timeout beside Transport, TRACE or
// CONNECT in Methods) makes Proxy panic.
type ProxyOptions struct {
	// Methods are the only methods forwarded (exact, case-sensitive names
	// such as "GET"); any other is answered 405 with an Allow header.
	// Default (empty): every method except TRACE and CONNECT, which are
	// always refused (TRACE would echo the access token back to the
	// browser) and may not be named here.
	Methods []string

	// Timeout bounds the wait for the upstream's response headers; when it
	// passes, the browser gets 504. A streaming response (server-sent
	// events) is not bounded once its headers have arrived. Default (zero):
	// 30 seconds. Must be zero with Transport.
	Timeout time.Duration

	// DialTimeout bounds connecting to the upstream: the TCP connection,
	// and the TLS handshake separately; when it passes, the browser gets
	// 504. Default (zero): 5 seconds. Must be zero with Transport.
	DialTimeout time.Duration

	// Transport sends the proxy's requests and owns every timeout.
	// Default (nil): an http.Transport like http.DefaultTransport with
	// Timeout and DialTimeout and up to 64 idle connections to the
	// upstream.
	Transport http.RoundTripper
}

// transport checks o and returns the RoundTripper it describes; a mistake
// is a programming error, so it panics, as Proxy does on a bad target.
func (o ProxyOptions) transport() http.RoundTripper {
	switch {
	case o.Timeout < 0:
		panic("bff: ProxyOptions.Timeout must not be negative (zero means 30 seconds)")
	case o.DialTimeout < 0:
		panic("bff: ProxyOptions.DialTimeout must not be negative (zero means 5 seconds)")
	case o.Transport != nil && o.Timeout != 0:
		panic("bff: ProxyOptions.Timeout must be zero with a Transport (set the timeout on the Transport)")
	case o.Transport != nil && o.DialTimeout != 0:
		panic("bff: ProxyOptions.DialTimeout must be zero with a Transport (set the timeout on the Transport)")
	case slices.ContainsFunc(o.Methods, neverProxied):
		panic("bff: ProxyOptions.Methods must not name TRACE or CONNECT: they are never proxied")
	case o.Transport != nil:
		return o.Transport
	}
	timeout, dial := cmp.Or(o.Timeout, 30*time.Second), cmp.Or(o.DialTimeout, 5*time.Second)
	dialer := &net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   dial,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: timeout,
	}
}

// Proxy returns a handler that forwards the browser's requests to the
// upstream API at target with the session's access token, so that the
// browser calls the API without ever holding a token. Mount it behind
// RequireSession (without a session it answers 401), with its path prefix
// stripped:
//
//	up, _ := url.Parse("https://api.internal/v1")
//	mux.Handle("/api/upstream/", b.RequireSession(http.StripPrefix("/api/upstream", b.Proxy(up, bff.ProxyOptions{}))))
//
// A request for /api/upstream/orders/7?x=1 then goes to
// https://api.internal/v1/orders/7?x=1 with Authorization: Bearer and
// without the browser's cookies and credentials. A path that could leave
// target's path, or a query that repeats one of target's parameters, is
// refused with 400; a cross-origin WebSocket handshake with 403. The
// upstream's cookies and CORS headers never reach the browser. An upstream
// 401 to a GET or HEAD without a body refreshes the token and retries
// once. Upstream failures are answered 502, timeouts 504, through
// Options.ErrorHandler with an *Error wrapping ErrUpstream. README's "The
// API proxy" says what is forwarded, refused and filtered, and why.
//
// Proxy panics if target is not an absolute http or https URL without user
// information and fragment, or if opts holds a mistake: both are
// programming errors.
func (b *BFF) Proxy(target *url.URL, opts ProxyOptions) http.Handler {
	if target == nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" ||
		target.User != nil || target.Fragment != "" || target.Opaque != "" {
		panic("bff: Proxy target must be an absolute http(s) URL without user information or fragment")
	}
	rt := opts.transport()
	p := &proxy{
		b:        b,
		scheme:   target.Scheme,
		host:     target.Host,
		query:    target.RawQuery,
		basePath: strings.TrimSuffix(target.Path, "/"),
		baseRaw:  strings.TrimSuffix(target.EscapedPath(), "/"),
		methods:  slices.Clone(opts.Methods),
		allow:    "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
		fwdHost:  []string{b.cfg.base.Host}[:1:1],
		fwdProto: []string{b.cfg.base.Scheme}[:1:1],
	}
	if len(p.methods) > 0 {
		p.allow = strings.Join(p.methods, ", ")
	}
	for pair := range strings.SplitSeq(target.RawQuery, "&") {
		if name, _, _ := strings.Cut(pair, "="); name != "" {
			if p.fixed == nil {
				p.fixed = map[string]bool{}
			}
			p.fixed[queryName(name)] = true
		}
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      &proxyTransport{b: b, rt: rt},
		FlushInterval:  -1,
		ModifyResponse: modifyProxyResponse,
		ErrorHandler:   p.upstreamError,
		ErrorLog:       slog.NewLogLogger(b.log.Handler(), slog.LevelWarn),
	}
	return p
}

type proxy struct {
	b                 *BFF
	scheme, host      string
	query             string          // target's raw query, merged into each request's
	fixed             map[string]bool // its parameter names (queryName), which the browser may not send
	basePath, baseRaw string          // target's path without a trailing slash; decoded and escaped
	methods           []string
	allow             string
	fwdHost, fwdProto []string // X-Forwarded-Host and -Proto: Options.BaseURL's
	rp                *httputil.ReverseProxy
}

var (
	errProxyNoSession = errUnauth(errors.New("proxy: no session in the request context (mount the proxy behind RequireSession)"))
	errProxyMethod    = newError(ErrBadRequest, http.StatusMethodNotAllowed, "method_not_allowed",
		"This method is not allowed here.", errors.New("proxy: method not allowed"))
	errProxyPath = newError(ErrBadRequest, http.StatusBadRequest, "bad_path",
		"The request path is not allowed.", errors.New("proxy: path refused"))
	errProxyQuery = newError(ErrBadRequest, http.StatusBadRequest, "bad_query",
		"The request sets a query parameter that the proxy fixes.",
		errors.New("proxy: query parameter of the target repeated, or ';' in the query"))
)

// proxyDropHeaders are request headers the browser may not pass on (in
// canonical form): its credentials, and headers that upstream frameworks
// or proxies read as the request's real path, method, host or client.
var proxyDropHeaders = []string{
	"Cookie", "Authorization",
	"X-Original-Url", "X-Rewrite-Url", "X-Forwarded-Prefix", "X-Forwarded-Path", "X-Forwarded-Uri",
	"X-Http-Method-Override", "X-Http-Method", "X-Method-Override",
	"X-Forwarded-Port", "X-Forwarded-Server", "X-Forwarded-Scheme", "X-Forwarded-Ssl", "X-Url-Scheme",
	"X-Real-Ip", "X-Client-Ip", "True-Client-Ip", "Cf-Connecting-Ip", "X-Cluster-Client-Ip", "X-Host",
}

func neverProxied(method string) bool { return method == "TRACE" || method == "CONNECT" }

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w, r, done := p.b.tel.proxyStart(w, r, p.host)
	defer done()
	if s, ok := fromContext(r.Context()); !ok || s.token.AccessToken == "" {
		p.b.fail(w, r, errProxyNoSession)
		return
	}
	if isUpgrade(r) {
		if err := p.b.checkUpgrade(r); err != nil {
			p.b.fail(w, r, err)
			return
		}
	}
	if neverProxied(r.Method) || (len(p.methods) > 0 && !slices.Contains(p.methods, r.Method)) {
		w.Header().Set("Allow", p.allow)
		p.b.fail(w, r, errProxyMethod)
		return
	}
	if _, ok := checkProxyPath(r.URL.EscapedPath()); !ok {
		p.b.fail(w, r, errProxyPath)
		return
	}
	if p.fixed != nil && !p.checkQuery(r.URL.RawQuery) {
		p.b.fail(w, r, errProxyQuery)
		return
	}
	var app http.Header
	if h := w.Header(); len(h) > 0 {
		app = h.Clone()
	}
	p.rp.ServeHTTP(&infoWriter{ResponseWriter: w, app: app}, r)
}

// rewrite builds the upstream request. ServeHTTP has checked the session
// and the path.
func (p *proxy) rewrite(pr *httputil.ProxyRequest) {
	out := pr.Out
	up, raw, _ := proxyPath(p.basePath, p.baseRaw, pr.In.URL.EscapedPath())
	u := out.URL // a copy of the inbound URL
	u.Scheme, u.Host, u.User, u.Opaque = p.scheme, p.host, nil, ""
	u.Path, u.RawPath = up, raw
	u.Fragment, u.RawFragment, u.ForceQuery = "", "", false
	switch {
	case p.query == "":
	case u.RawQuery == "":
		u.RawQuery = p.query
	default:
		u.RawQuery = p.query + "&" + u.RawQuery
	}
	out.Host = "" // the Host header is target's

	h := out.Header
	for _, k := range proxyDropHeaders {
		delete(h, k)
	}
	if p.b.cfg.CSRFHeader != "" {
		h.Del(p.b.cfg.CSRFHeader)
	}
	s, _ := fromContext(pr.In.Context())
	h["Authorization"] = []string{"Bearer " + s.token.AccessToken}

	pr.SetXForwarded()
	h["X-Forwarded-Host"] = p.fwdHost // shared, read-only: cap = len, so an append copies
	h["X-Forwarded-Proto"] = p.fwdProto
	p.b.tel.inject(out.Context(), h) // this request's span continues the incoming trace
}

// checkQuery reports whether the browser's query leaves the target's
// parameters alone: none of its names reads as one of them, and it has no
// ';' (which some servers take for '&').
func (p *proxy) checkQuery(raw string) bool {
	if strings.IndexByte(raw, ';') >= 0 {
		return false
	}
	for pair := range strings.SplitSeq(raw, "&") {
		if name, _, _ := strings.Cut(pair, "="); p.fixed[queryName(name)] {
			return false
		}
	}
	return true
}

// queryName is a parameter name as frameworks may read it:
// percent-decoded ('+' as a space), in lower case, up to a '[' (PHP and
// Rails arrays) or a NUL, with '.' and ' ' as '_' (PHP).
func queryName(name string) string {
	if d, err := url.QueryUnescape(name); err == nil {
		name = d
	}
	if i := strings.IndexAny(name, "[\x00"); i >= 0 {
		name = name[:i]
	}
	return strings.Map(func(r rune) rune {
		if r == '.' || r == ' ' {
			return '_'
		}
		return unicode.ToLower(r)
	}, name)
}

// proxyPath maps the escaped path of a request (after the mount prefix) to
// the upstream path below base (decoded and escaped forms, without a
// trailing slash). ok is false for a path that could leave base or be read
// differently by the upstream: dot segments, also percent-encoded; encoded
// slashes and backslashes; empty segments; control characters; characters
// that an escaped path does not hold (backslash, space, '?', '#', non-ASCII);
// malformed escapes; invalid UTF-8; "..;x" (a dot segment with
// a path parameter). Such paths are refused, not cleaned.
func proxyPath(basePath, baseRaw, in string) (path, raw string, ok bool) {
	decoded, ok := checkProxyPath(in)
	switch {
	case !ok:
		return "", "", false
	case in == "" && basePath == "":
		return "/", "/", true
	case in != "" && in[0] != '/':
		in, decoded = "/"+in, "/"+decoded
	}
	return basePath + decoded, baseRaw + in, true
}

// checkProxyPath is proxyPath's check; it returns in decoded. It allocates
// only for a path with percent-encoding.
func checkProxyPath(in string) (decoded string, ok bool) {
	if strings.Contains(in, "//") {
		return "", false
	}
	// Only characters of an escaped path (as url.URL.EscapedPath makes
	// them): no backslash, space, '?', '#', control or non-ASCII byte.
	for i := 0; i < len(in); i++ {
		if c := in[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("-._~!$&'()*+,;=:@[]%/", c) >= 0) {
			return "", false
		}
	}
	decoded = in
	if strings.IndexByte(in, '%') >= 0 {
		var err error
		if decoded, err = url.PathUnescape(in); err != nil || !utf8.ValidString(decoded) {
			return "", false // malformed escape; invalid (such as overlong) UTF-8
		}
	}
	// Check each segment of the escaped path in its decoded form.
	for rest := strings.TrimPrefix(in, "/"); rest != ""; {
		seg, tail, _ := strings.Cut(rest, "/")
		rest = tail
		if strings.IndexByte(seg, '%') >= 0 {
			seg, _ = url.PathUnescape(seg) // valid: the whole path unescaped
		}
		// A path parameter does not hide a dot segment (Tomcat reads
		// "..;x" as "..").
		if name, _, _ := strings.Cut(seg, ";"); name == "." || name == ".." {
			return "", false
		}
		for i := 0; i < len(seg); i++ {
			if c := seg[i]; c < 0x20 || c == 0x7f || c == '/' || c == '\\' {
				return "", false
			}
		}
	}
	return decoded, true
}

// modifyProxyResponse filters the upstream's answer (and its 101).
func modifyProxyResponse(res *http.Response) error {
	filterProxyHeader(res.Header)
	return nil
}

// filterProxyHeader removes what an upstream may not tell the browser on
// the app's origin: cookies (Set-Cookie, Clear-Site-Data), which would mix
// with (or clear) the session cookie, and CORS (Access-Control-*), which
// would open the app's origin, and its session, to other sites' reads.
func filterProxyHeader(h http.Header) {
	for k := range h {
		if strings.EqualFold(k, "Set-Cookie") || strings.EqualFold(k, "Clear-Site-Data") ||
			len(k) > 15 && strings.EqualFold(k[:15], "Access-Control-") {
			delete(h, k)
		}
	}
}

// infoWriter keeps an upstream's 1xx (such as 103 Early Hints) to
// filterProxyHeader, and the app's own headers on the final answer:
// httputil.ReverseProxy sends a 1xx by adding its headers to the
// ResponseWriter's, without ModifyResponse, and then clears them all.
type infoWriter struct {
	http.ResponseWriter
	app     http.Header // the app's headers when the proxy started
	restore bool        // a 1xx was sent: restore app before the next use
}

func (w *infoWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *infoWriter) Header() http.Header {
	h := w.ResponseWriter.Header()
	if w.restore {
		w.restore = false
		clear(h)
		for k, v := range w.app {
			h[k] = slices.Clone(v)
		}
	}
	return h
}

func (w *infoWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		filterProxyHeader(w.Header())
		w.restore = true
	}
	w.ResponseWriter.WriteHeader(code)
}

// proxyTransport retries a replayable request once with a refreshed token
// when the upstream rejects the token.
type proxyTransport struct {
	b  *BFF
	rt http.RoundTripper
}

func (t *proxyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.rt.RoundTrip(req)
	if err != nil || res.StatusCode != http.StatusUnauthorized ||
		(req.Method != "GET" && req.Method != "HEAD") || (req.Body != nil && req.Body != http.NoBody) {
		return res, err
	}
	s, ok := fromContext(req.Context())
	if !ok {
		return res, nil
	}
	ns, err := t.b.refreshRejected(req.Context(), s)
	if err != nil {
		discard(res)
		return nil, err
	}
	if ns.token.AccessToken == "" || ns.token.AccessToken == s.token.AccessToken {
		return res, nil // no other token to try: the upstream's 401 stands
	}
	discard(res)
	retry := req.Clone(req.Context())
	retry.Header["Authorization"] = []string{"Bearer " + ns.token.AccessToken}
	return t.rt.RoundTrip(retry)
}

// discard drops a response that will not be used, reading a little of it
// so that the connection can be reused.
func discard(res *http.Response) {
	io.CopyN(io.Discard, res.Body, 4<<10)
	res.Body.Close()
}

// upstreamError is the ReverseProxy's error handler. r is the outbound
// request.
func (p *proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	// The outbound request carries the token; the error handler and the
	// log must not see it.
	r = r.Clone(r.Context())
	r.Header.Del("Authorization")

	var e *Error
	var ne net.Error
	switch {
	case errors.As(err, &e): // from the refresh after an upstream 401
		if e.Status == http.StatusUnauthorized {
			p.b.sessionCookie(w, "", -1)
		}
	case errors.Is(r.Context().Err(), context.Canceled):
		// The browser has gone; nobody reads this answer.
		p.b.log.DebugContext(r.Context(), "bff: proxy request canceled", "method", r.Method, "path", r.URL.Path)
		w.WriteHeader(http.StatusBadGateway)
		return
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		e = newError(ErrUpstream, http.StatusGatewayTimeout, "upstream_timeout", "The upstream API did not answer in time.", err)
	default:
		e = newError(ErrUpstream, http.StatusBadGateway, "upstream_unavailable", "The upstream API cannot be reached.", err)
	}
	p.b.fail(w, r, e)
}
