//go:build race

package main

// raceEnabled: the race detector allows at most 8,128 live goroutines, fewer
// than the capacity test's streams need in this process.
const raceEnabled = true
