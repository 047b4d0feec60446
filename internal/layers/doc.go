// Package layers holds no code: its test checks that ratchet's packages
// depend on each other in one direction only, and that each binary links
// only the clients it needs (go list -deps).
package layers
