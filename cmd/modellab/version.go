package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// version overrides the version of the build info, for release builds;
// commit names the revision when the build info has none (a container
// build without the .git directory):
//
//	go build -ldflags "-X main.version=v1.2.3 -X main.commit=$(git rev-parse HEAD)" ./cmd/modellab
var version, commit string

// buildInfo is what `modellab version` prints and modellab_build_info
// exports.
type buildInfo struct {
	Version   string
	Commit    string // the VCS revision, "unknown" when the build has none
	Modified  bool   // built from a tree with uncommitted changes
	GoVersion string
}

func readBuildInfo() buildInfo {
	info, _ := debug.ReadBuildInfo()
	b := buildInfoFrom(info, version)
	if b.Commit == "unknown" && commit != "" {
		b.Commit = commit
	}
	return b
}

// buildInfoFrom takes the version from override, else from the module
// (a tagged or pseudo version when the go command stamped one), else
// "dev"; the commit from the vcs.revision setting.
func buildInfoFrom(info *debug.BuildInfo, override string) buildInfo {
	b := buildInfo{Version: "dev", Commit: "unknown", GoVersion: runtime.Version()}
	if info != nil {
		if v := info.Main.Version; v != "" && v != "(devel)" {
			b.Version = v
		}
		if info.GoVersion != "" {
			b.GoVersion = info.GoVersion
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if s.Value != "" {
					b.Commit = s.Value
				}
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if override != "" {
		b.Version = override
	}
	return b
}

// buildInfoCollector is the modellab_build_info gauge: always 1, the
// build in its labels.
func buildInfoCollector(b buildInfo) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "modellab_build_info",
		Help:        "The build of this process: version, VCS commit and Go version (value 1).",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "goversion": b.GoVersion},
	})
	g.Set(1)
	return g
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if code, ok := parseFlags(fs, cmdVersion, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(stderr, cmdVersion, "unexpected arguments %q", fs.Args())
	}
	b := readBuildInfo()
	commit := b.Commit
	if b.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(stdout, "modellab %s\ncommit:  %s\ngo:      %s\n", b.Version, commit, b.GoVersion)
	return 0
}
