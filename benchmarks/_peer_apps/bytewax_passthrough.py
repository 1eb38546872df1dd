"""Bytewax passthrough with its Kafka operators. Bytewax keeps the source offsets in its recovery snapshots, not
in a consumer group: at-least-once holds only with recovery on, so `benchmarks/peers.py` runs this flow with a
recovery directory (`-r`, one partition initialised by `python -m bytewax.recovery`), snapshotting every second.
`batch_size` is the source's documented throughput knob."""

import os

from bytewax import operators as op
from bytewax.connectors.kafka import operators as kop
from bytewax.dataflow import Dataflow

bootstrap, source, destination = os.environ["PEER_ARGS"].split()[:3]

flow = Dataflow("passthrough")
consumed = kop.input("in", flow, brokers=[bootstrap], topics=[source], batch_size=1000)
kop.output("out", op.map("to_sink", consumed.oks, lambda m: m.to_sink()), brokers=[bootstrap], topic=destination)
