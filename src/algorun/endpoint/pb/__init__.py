"""Generated gRPC code of the original PipelineEndpoint service (see pipeline_endpoint.proto)."""
