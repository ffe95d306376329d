//go:build !linux

package redistest

import "os/exec"

// dieWithParent is Linux-only; elsewhere Stop and t.Cleanup end the server.
func dieWithParent(*exec.Cmd) {}
