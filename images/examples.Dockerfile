# syntax=docker/dockerfile:1
# The example pipelines' algos in one image (examples/*/algos), on top of algorun's image, so that every kind of
# algo in examples/ runs on Kubernetes: HTTP servers (sidecar runner), executables (the self-contained runner
# copied in) and python functions (`algorun runner` imports them from the working directory).
#
#   make image                                                              # builds this one too
#   docker build -f images/examples.Dockerfile -t algorun/examples:1 .     # from the repository root
#
# The examples name it `algorun/examples:1`; an entrypoint such as `python3 algos/charge.py` runs from
# /opt/examples/pipelines. Algo file names are unique across the examples (tests/unit/chart/test_images.py).
ARG ALGORUN_IMAGE=algorun/algorun:0.2.0
FROM ${ALGORUN_IMAGE}
# Laid out as in the repository, seen from an algo: its folder's parent's parent holds the shared http_algo.py.
COPY examples/http_algo.py /opt/examples/http_algo.py
COPY examples/*/algos/ /opt/examples/pipelines/algos/
WORKDIR /opt/examples/pipelines
