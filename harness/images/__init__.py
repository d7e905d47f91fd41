"""OCI image archives the harness builds itself (there is no registry on these machines)."""
