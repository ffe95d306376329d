package exampleapp

import (
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/gobff/bff"
)

// The examples' API handlers, the same on every router: mount them behind
// the BFF's RequireSession (and StepUp behind RequireAuthLevel too).

// MeResponse is the JSON of GET /api/me.
type MeResponse struct {
	Sub            string `json:"sub"`
	Name           string `json:"name,omitempty"`
	Email          string `json:"email"`
	TokenExpiresAt string `json:"tokenExpiresAt"` // RFC 3339; empty when the provider gave no expiry
}

// Me answers who is signed in and until when the access token that a call
// to a downstream API would use is valid.
func Me(w http.ResponseWriter, r *http.Request) {
	user, _ := bff.UserFrom(r.Context())
	tok, _ := bff.TokenFrom(r.Context())
	resp := MeResponse{Sub: user.Subject, Name: user.Name, Email: user.Email}
	if !tok.Expiry.IsZero() {
		resp.TokenExpiresAt = tok.Expiry.UTC().Format(time.RFC3339)
	}
	writeJSON(w, resp)
}

// StepUpResponse is the JSON of GET /api/stepup.
type StepUpResponse struct {
	ACR      string `json:"acr"`
	AuthTime string `json:"authTime,omitempty"` // RFC 3339: when the user authenticated at the provider
}

// StepUp answers the level and time of the sign-in that RequireAuthLevel
// accepted.
func StepUp(w http.ResponseWriter, r *http.Request) {
	user, _ := bff.UserFrom(r.Context())
	resp := StepUpResponse{ACR: user.ACR()}
	if t := user.AuthTime(); !t.IsZero() {
		resp.AuthTime = t.UTC().Format(time.RFC3339)
	}
	writeJSON(w, resp)
}

// Echo answers its JSON request body (at most 64 KiB): an unsafe request
// that RequireSession accepts only from the app's own origin.
func Echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case err != nil:
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		io.WriteString(w, `{"error":"too_large","error_description":"The body is limited to 64 KiB."}`+"\n")
	case !json.Valid(body):
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_json","error_description":"The body is not JSON."}`+"\n")
	default:
		w.Write(body)
	}
}

// writeJSON answers v as JSON that no cache keeps (it is the user's).
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}
