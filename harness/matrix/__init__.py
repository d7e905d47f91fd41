"""Version matrix and bisect over real containerd releases (issue #15)."""
