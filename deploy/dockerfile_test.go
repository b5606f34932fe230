package deploy

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfileBuildsWhatTheManifestsExpect reads deploy/Dockerfile (no
// container engine here) for what the image must be: built by the Go of
// the main module's go line, static, for the target platform, with the
// build caches mounted, run as a numeric non-root user from a base with
// nothing to write to.
func TestDockerfileBuildsWhatTheManifestsExpect(t *testing.T) {
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	if goLine == nil {
		t.Fatal("no go line in ../go.mod")
	}
	s := string(df)
	for _, want := range []struct{ text, why string }{
		{"FROM --platform=$BUILDPLATFORM golang:" + string(goLine[1]) + " AS build", "the builder is the Go of go.mod's go line, on the build platform"},
		{"ARG TARGETOS TARGETARCH", "cross-compiles for the target platform"},
		{"GOOS=$TARGETOS GOARCH=$TARGETARCH", "cross-compiles for the target platform"},
		{"CGO_ENABLED=0", "a static binary for a base without libc"},
		{"--mount=type=cache,target=/root/.cache/go-build", "Go's build cache outlives the build (msgraph-sdk-go)"},
		{"--mount=type=cache,target=/go/pkg/mod", "the module cache outlives the build"},
		{"FROM gcr.io/distroless/static-debian12:nonroot", "a base with no shell and a nonroot user"},
		{"USER 65532:65532", "a numeric user, so runAsNonRoot can verify it"},
		{`ENTRYPOINT ["/guestflow"]`, "the manifests' args are guestflow's"},
	} {
		if !strings.Contains(s, want.text) {
			t.Errorf("Dockerfile lacks %q: %s", want.text, want.why)
		}
	}
}

// TestDockerignoreLeavesOutAllButTheSources: the build context is the
// main module's sources, so local state neither leaks into the image's
// build nor invalidates its cache.
func TestDockerignoreLeavesOutAllButTheSources(t *testing.T) {
	b, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	for _, want := range []string{"*", "!go.mod", "!go.sum", "!cmd/", "!functions/", "!internal/", "!pkg/"} {
		if !lines[want] {
			t.Errorf(".dockerignore lacks %q", want)
		}
	}
	for _, not := range []string{"!deploy/", "!e2e/", "!.git"} {
		if lines[not] {
			t.Errorf(".dockerignore lets %q into the build context", not)
		}
	}
}
