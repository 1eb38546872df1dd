"""Generated gRPC code of the PipelineEndpoint service (see pipeline_endpoint.proto)."""
