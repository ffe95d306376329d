//go:build unix

package redistest

import "syscall"

// Freeze stops the process (SIGSTOP) without closing its connections: it
// neither answers nor acknowledges replication until Thaw, as a stalled
// machine would.
func (s *Server) Freeze() { s.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen process (SIGCONT).
func (s *Server) Thaw() { s.signal(syscall.SIGCONT) }
