#!/usr/bin/env bash
# Builds kube-apiserver from the Go module proxy (the release pinned in this
# directory's go.mod) into a cache keyed by that release, and prints its path.
# A cold build takes about 10 minutes on 2 cores (see deploy/README.md); a
# cached one, nothing.
#   CACHE  where built binaries are kept (default $HOME/.cache/mlc)
set -euo pipefail
cd "$(dirname "$0")"
export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0
version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' go.mod)
[[ -n "$version" ]] || { echo "build.sh: no k8s.io/kubernetes in go.mod" >&2; exit 1; }
dir="${CACHE:-$HOME/.cache/mlc}/kube-apiserver-$version-$(go env GOOS)-$(go env GOARCH)"
if [[ ! -x "$dir/kube-apiserver" ]]; then
  mkdir -p "$dir"
  start=$SECONDS
  minor=${version#v1.}; minor=${minor%%.*}
  # The version the server reports (and PodSecurity's "latest" means).
  go build -trimpath -ldflags "-X k8s.io/component-base/version.gitVersion=$version \
    -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
    -o "$dir/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  mv "$dir/kube-apiserver.tmp" "$dir/kube-apiserver"
  echo "build.sh: built kube-apiserver $version in $((SECONDS - start))s" >&2
fi
echo "$dir/kube-apiserver"
