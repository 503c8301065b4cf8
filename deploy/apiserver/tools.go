//go:build tools

// Package apiserver only records the kube-apiserver command as a
// dependency; build it with
//
//	GOWORK=off go build -o <dir>/kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
package apiserver

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
