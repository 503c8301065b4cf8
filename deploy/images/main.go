// Command mlc-images builds the services' OCI images without a container
// engine (make images) and pins an overlay to their digests (make pin).
//
//	mlc-images build -out bin/images ifs-poller gc-webhook ...
//	mlc-images pin -digests bin/images/digests.txt -registry ghcr.io/ml-connector \
//	    -out deploy/k8s/overlays/prod/images/kustomization.yaml
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ml-connector/ml-connector/deploy/images/build"
	"github.com/ml-connector/ml-connector/deploy/images/oci"
	"github.com/ml-connector/ml-connector/deploy/images/pin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mlc-images:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: mlc-images build|pin [flags]")
	}
	switch args[0] {
	case "build":
		return runBuild(ctx, args[1:])
	case "pin":
		return runPin(ctx, args[1:])
	}
	return fmt.Errorf("unknown command %q: want build or pin", args[0])
}

func runBuild(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	root := fs.String("root", ".", "the workspace (go.work)")
	out := fs.String("out", "bin/images", "directory for the OCI layouts, archives and digests.txt")
	platforms := fs.String("platforms", "linux/amd64", "comma-separated os/arch[/variant]")
	revision := fs.String("revision", "", "source revision label (default: git HEAD, -dirty if the tree differs)")
	version := fs.String("version", "", "version label and layout ref name")
	source := fs.String("source", "https://github.com/ml-connector/ml-connector", "source repository label")
	ca := fs.String("ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "PEM CA certificates for the base layer (Debian ca-certificates)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("build: name the services to build")
	}
	var plats []oci.Platform
	for p := range strings.SplitSeq(*platforms, ",") {
		pl, err := oci.ParsePlatform(strings.TrimSpace(p))
		if err != nil {
			return err
		}
		plats = append(plats, pl)
	}
	rev, created, err := gitRevision(ctx, *root)
	if err != nil {
		return err
	}
	if *revision != "" {
		rev = *revision
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	var digests bytes.Buffer
	for _, svc := range fs.Args() {
		o := build.Options{Root: *root, Service: svc, Platforms: plats, Revision: rev, Created: created,
			Version: *version, Source: *source, CABundle: *ca, Out: *out}
		d, err := build.Image(ctx, o)
		if err != nil {
			return err
		}
		if err := oci.Archive(filepath.Join(*out, svc), filepath.Join(*out, svc+".tar"), created); err != nil {
			return err
		}
		fmt.Printf("%s %s\n", svc, d.Digest)
		fmt.Fprintf(&digests, "%s %s\n", svc, d.Digest)
	}
	header := fmt.Sprintf("# revision %s\n", rev)
	return os.WriteFile(filepath.Join(*out, "digests.txt"), append([]byte(header), digests.Bytes()...), 0o644)
}

// gitRevision is HEAD and its commit time; a tree with uncommitted changes
// gets "-dirty", since the image is then not that commit.
func gitRevision(ctx context.Context, root string) (string, time.Time, error) {
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = root
		b, err := cmd.Output()
		return strings.TrimSpace(string(b)), err
	}
	rev, err := git("rev-parse", "HEAD")
	if err != nil {
		return "", time.Time{}, fmt.Errorf("git rev-parse HEAD (pass -revision outside a git checkout): %w", err)
	}
	ct, err := git("log", "-1", "--format=%ct", "HEAD")
	if err != nil {
		return "", time.Time{}, fmt.Errorf("git log: %w", err)
	}
	sec, err := strconv.ParseInt(ct, 10, 64)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("commit time %q: %w", ct, err)
	}
	if st, err := git("status", "--porcelain", "--untracked-files=no"); err == nil && st != "" {
		rev += "-dirty"
	}
	return rev, time.Unix(sec, 0).UTC(), nil
}

func runPin(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("pin", flag.ContinueOnError)
	digests := fs.String("digests", "bin/images/digests.txt", "digests written by mlc-images build")
	registry := fs.String("registry", "ghcr.io/ml-connector", "where the images were pushed")
	baseRepo := fs.String("base", "ghcr.io/ml-connector", "the image repository the base manifests name")
	out := fs.String("out", "", "the kustomize Component file to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("pin: -out is required")
	}
	b, err := os.ReadFile(*digests)
	if err != nil {
		return err
	}
	rev := "unknown"
	if first, _, _ := strings.Cut(string(b), "\n"); strings.HasPrefix(first, "# revision ") {
		rev = strings.TrimPrefix(first, "# revision ")
	}
	images, err := pin.ReadDigests(bytes.NewReader(b))
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := pin.Component(&buf, images, *baseRepo, *registry, rev); err != nil {
		return err
	}
	return os.WriteFile(*out, buf.Bytes(), 0o644)
}
