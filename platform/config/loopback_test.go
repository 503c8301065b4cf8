package config

import "testing"

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "127.0.0.1": true, "127.0.0.2": true, "::1": true,
		"localhost.evil.com": false, "127.0.0.1.nip.io": false, "localhost.": false, "0.0.0.0": false,
		"::": false, "127.1": false, "::ffff:127.0.0.1": false, "::1%eth0": false, "10.0.0.7": false, "": false,
	} {
		if got := IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}
