"""The web console: the pipeline as a live graph, its dead letters, and replay.

`graph` turns a topology into nodes and edges (pure); `figures` polls the data plane and the components' metrics
at a bounded interval and keeps the latest sample; a `source.PipelineSource` answers for pipelines (the local
mode's is `algorun.local.console_source`, so the console never imports the local mode that serves it;
`kube_source` reads a cluster); `server` is the aiohttp app that serves the built front end (`static/`) and the
JSON API.
"""
