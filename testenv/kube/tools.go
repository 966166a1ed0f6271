//go:build tools

// Package kube only pins the kube-apiserver command for build.sh.
package kube

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
