package bfftest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/gobff/bff"
	"github.com/gobff/bff/bfftest"
)

// A unit test of a handler that runs behind RequireSession: no provider,
// no session store, only the user and token the handler reads.
func ExampleWithUser() {
	greet := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _ := bff.UserFrom(r.Context())
		groups, _ := user.Claim("groups")
		fmt.Fprintf(w, "hello %s %v", user.Name, groups)
	})

	r := httptest.NewRequest("GET", "/api/hello", nil)
	user := bfftest.User{Subject: "u-1", Name: "Uma", Claims: map[string]any{"groups": []string{"admin"}}}
	r = r.WithContext(bfftest.WithUser(r.Context(), user, bff.Token{AccessToken: "test-token", TokenType: "Bearer"}))
	w := httptest.NewRecorder()
	greet.ServeHTTP(w, r)
	fmt.Println(w.Body.String())
	// Output: hello Uma [admin]
}
