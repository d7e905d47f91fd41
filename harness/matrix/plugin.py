"""pytest hooks of the version matrix (``--reconverge-containerd``); filled in by issue #15."""
