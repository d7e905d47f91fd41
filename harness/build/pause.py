"""The pod sandbox's PID 1, as Go source the build cache compiles (no registry ships it).

Why not busybox ``sleep`` (what the CRI sandbox image of the seed-b suites runs): a pause
process is PID 1 of the pod, and when a pod shares its PID namespace
(``shareProcessNamespace: true``) every orphaned process is re-parented to it. ``sleep``
never calls ``wait``, so those stay zombies until the pod dies; and as PID 1 it ignores
SIGTERM (the kernel drops default-action signals to a namespace's init), so a polite stop
waits out the whole grace period. This program reaps every child on SIGCHLD and exits 0 on
SIGINT/SIGTERM, which is what a pause container is for. It is a static Go binary (~1.5 MB),
built with the same toolchain and flags as everything else in the cache.

The cache version is a digest of :data:`SOURCE`, so editing it rebuilds.
"""

from __future__ import annotations

import hashlib

SOURCE = """\
// pause: a pod sandbox's PID 1. It never exits on its own, reaps every child that is
// re-parented to it, and exits 0 on SIGINT or SIGTERM. Written for reconverge.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		os.Stdout.WriteString("pause (reconverge)\\n")
		return
	}
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		os.Exit(0)
	}
}
"""

VERSION = "src-" + hashlib.sha256(SOURCE.encode()).hexdigest()[:12]
GO_MOD = "module reconverge.local/pause\n\ngo 1.24.0\n"
