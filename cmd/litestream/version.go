package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

func (m *Main) runVersion(_ context.Context, args []string) error {
	fs := m.newFlagSet("version", m.versionUsage)
	verbose := fs.Bool("verbose", false, "print detailed build metadata")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if !*verbose {
		fmt.Fprintln(m.Stdout, Version)
		return nil
	}
	fmt.Fprintf(m.Stdout, "Version:     %s\n", Version)
	fmt.Fprintf(m.Stdout, "Go Version:  %s\n", runtime.Version())
	if bi, ok := debug.ReadBuildInfo(); ok {
		var revision, commitTime string
		var modified bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			case "vcs.time":
				commitTime = s.Value
			}
		}
		if revision != "" {
			if modified {
				revision += " (dirty)"
			}
			fmt.Fprintf(m.Stdout, "Git Commit:  %s\n", revision)
		}
		if commitTime != "" {
			fmt.Fprintf(m.Stdout, "Commit Time: %s\n", commitTime)
		}
	}
	fmt.Fprintf(m.Stdout, "OS/Arch:     %s/%s\n", runtime.GOOS, runtime.GOARCH)
	return nil
}

func (m *Main) versionUsage() {
	fmt.Fprint(m.Stdout, `Prints the version.

Usage:

	litestream version [arguments]

Arguments:

	-verbose
	    Print detailed build metadata (Go version, commit, build time, OS/arch).

`)
}
