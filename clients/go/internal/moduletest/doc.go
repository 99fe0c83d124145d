// Package moduletest holds one test: a fresh module outside this one
// imports the SDK, and its go.sum must hold nothing of the Sovereign
// server. It has no code of its own.
package moduletest
