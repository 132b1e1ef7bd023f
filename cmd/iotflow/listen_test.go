package main

import (
	"crypto/rand"
	"encoding/hex"
	"regexp"
)

// listenRE finds the address in the line serve prints once it listens.
var listenRE = regexp.MustCompile(`listening on (http://\S+)`)

// randomHex returns n random bytes in hex, for names unique to one test.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
