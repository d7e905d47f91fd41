"""The claims world of ``reconverge explore``: etcd + kube-apiserver + toxiproxy + the
reference claim operator (seed d), driven by schedules of claim, pod and fault steps."""
