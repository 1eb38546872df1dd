"""algorun.operator: the Kubernetes operator for PipelineDeployments.

`render` turns a pipeline and the operator settings into the complete desired object list (pure); `apply`
converges the cluster to it with server-side apply and prunes what is no longer desired; `status` derives the
PipelineDeployment status from what exists; `handlers` wires it all into kopf. See docs/operator.md for the
internal contract (env vars, mounts, labels).
"""
