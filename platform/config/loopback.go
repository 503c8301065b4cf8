package config

import "net/netip"

// IsLoopbackHost says whether host (a URL's or an address's host, without
// port or brackets) names this machine's loopback interface in a plain
// form: localhost, an address of 127.0.0.0/8, or ::1. An IPv4-mapped or
// zoned loopback address stays on the machine too, but browsers need not
// treat it as a secure context and RFC 8252 8.3 names only these; a name
// that merely starts like one (localhost.example.com, 127.0.0.1.nip.io)
// is not one. Settings that expose something only safe on this machine
// (profiles, a console over plain http) accept only these.
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback() && a.Zone() == "" && !a.Is4In6()
}
