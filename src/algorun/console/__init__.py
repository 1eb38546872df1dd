"""The web console: the pipeline as a live graph, its dead letters, and replay.

`graph` turns a topology into nodes and edges (pure); `figures` polls the data plane and the components' metrics
at a bounded interval and keeps the latest sample; `local_source` answers for a pipeline that `algorun run`
supervises; `server` is the aiohttp app that serves the built front end (`static/`) and the JSON API.
"""
