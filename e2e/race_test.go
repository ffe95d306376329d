//go:build race

package e2e

// raceEnabled: the example is built with -race too, and its log is checked
// for data races.
const raceEnabled = true
