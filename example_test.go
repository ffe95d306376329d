package bff_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"

	"github.com/gobff/bff"
	"github.com/gobff/bff/bfftest"
)

// A complete sign-in: a test OpenID Provider stands in for the real one, and
// an http.Client with a cookie jar plays the browser.
func Example() {
	op := bfftest.NewProvider(bfftest.Config{})
	defer op.Close()

	mux := http.NewServeMux()
	app := httptest.NewServer(mux)
	defer app.Close()

	auth, err := bff.New(bff.Options{
		Issuer:       op.Issuer(),
		ClientID:     op.ClientID(),
		ClientSecret: op.ClientSecret(),
		BaseURL:      app.URL, // the redirect URI is app.URL + "/auth/callback"
	})
	if err != nil {
		log.Fatal(err)
	}
	defer auth.Close()
	mux.Handle("/auth/", auth)
	mux.Handle("GET /api/me", auth.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _ := bff.UserFrom(r.Context())
		fmt.Fprintln(w, user.Email)
	})))
	if err := auth.Ready(context.Background()); err != nil { // discovery done
		log.Fatal(err)
	}

	// The browser signs in and comes back to /api/me.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	resp, err := browser.Get(app.URL + "/auth/login?returnTo=/api/me")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))
	// Output: alice@example.com
}

// A handler behind RequireSession calls a downstream API with the user's
// access token; the browser never sees it.
func ExampleTokenFrom() {
	var auth *bff.BFF // from bff.New
	orders := func(w http.ResponseWriter, r *http.Request) {
		user, _ := bff.UserFrom(r.Context())
		tok, _ := bff.TokenFrom(r.Context())
		req, _ := http.NewRequestWithContext(r.Context(), "GET", "https://api.example/orders?customer="+user.Subject, nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, "orders unavailable", http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", "application/json")
		io.Copy(w, resp.Body)
	}
	http.Handle("GET /api/orders", auth.RequireSession(http.HandlerFunc(orders)))
}

// Pages of a server-rendered app: a public home page that greets a
// signed-in user, and an account page that a signed-out browser reaches by
// signing in first. The event streams end when the server shuts down.
func ExampleBFF_RequireLogin() {
	var auth *bff.BFF // from bff.New
	home := func(w http.ResponseWriter, r *http.Request) {
		if user, ok := bff.UserFrom(r.Context()); ok {
			fmt.Fprintf(w, "Hello, %s", user.Name)
			return
		}
		fmt.Fprint(w, `<a href="/auth/login?returnTo=/">Sign in</a>`)
	}
	account := func(w http.ResponseWriter, r *http.Request) {
		user, _ := bff.UserFrom(r.Context())
		fmt.Fprintf(w, "Signed in as %s", user.Email)
	}
	mux := http.NewServeMux()
	mux.Handle("/auth/", auth) // with /auth/events, the live session events
	mux.Handle("GET /{$}", auth.OptionalSession(http.HandlerFunc(home)))
	mux.Handle("GET /account", auth.RequireLogin(http.HandlerFunc(account)))
	srv := &http.Server{Addr: ":8080", Handler: mux}
	srv.RegisterOnShutdown(auth.CloseEventStreams)
}

// Step-up: a route that needs a strong sign-in answers 401 with RFC 9470's
// challenge; the browser app signs the user in again with the acr values it
// names, and the route then answers.
func ExampleBFF_RequireAuthLevel() {
	op := bfftest.NewProvider(bfftest.Config{})
	defer op.Close()
	mux := http.NewServeMux()
	app := httptest.NewServer(mux)
	defer app.Close()
	auth, err := bff.New(op.Options(app.URL))
	if err != nil {
		log.Fatal(err)
	}
	defer auth.Close()
	mux.Handle("/auth/", auth)
	mux.Handle("GET /api/transfer", auth.RequireSession(auth.RequireAuthLevel([]string{bfftest.ACRStrong}, 0)(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user, _ := bff.UserFrom(r.Context())
			fmt.Fprintln(w, "transfer allowed at", user.ACR())
		}))))
	auth.Ready(context.Background())

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	get := func(path string) *http.Response {
		resp, err := browser.Get(app.URL + path)
		if err != nil {
			log.Fatal(err)
		}
		return resp
	}
	get("/auth/login?returnTo=/").Body.Close() // an ordinary sign-in
	resp := get("/api/transfer")
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	get("/auth/login?returnTo=/&acr_values=" + bfftest.ACRStrong).Body.Close() // the step-up
	resp = get("/api/transfer")
	io.Copy(os.Stdout, resp.Body)
	resp.Body.Close()
	// Output:
	// 401 Bearer error="insufficient_user_authentication", error_description="A stronger or more recent sign-in is required.", acr_values="urn:oidctest:acr:strong"
	// transfer allowed at urn:oidctest:acr:strong
}
