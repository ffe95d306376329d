//go:build !unix

package redistest

// Freeze is Unix-only: it fails the test elsewhere.
func (s *Server) Freeze() { s.t.Fatal("redistest: Freeze needs SIGSTOP (Unix)") }

// Thaw is Unix-only: it fails the test elsewhere.
func (s *Server) Thaw() { s.t.Fatal("redistest: Thaw needs SIGCONT (Unix)") }
