//go:build !unix

package main

// enableExtendedConnect does nothing where the binary cannot re-execute
// itself; set GODEBUG=http2xconnect=1 in the environment instead.
func enableExtendedConnect() {}
