"""faust-streaming passthrough: one agent forwarding raw bytes. `processing_guarantee="at_least_once"` is its
default: an offset is committed once the agent has acknowledged the event (the send is awaited before the next
event is taken)."""

import sys

import faust

bootstrap, source, destination, group = sys.argv[1:5]
sys.argv[1:] = ["worker", "--loglevel", "warn", "--without-web"]

app = faust.App(
    group,
    broker=f"kafka://{bootstrap}",
    processing_guarantee="at_least_once",
    topic_partitions=4,
    key_serializer="raw",
    value_serializer="raw",
    consumer_auto_offset_reset="earliest",
    stream_buffer_maxsize=16384,
    broker_commit_every=10000,
    producer_linger_ms=5,
    web_enabled=False,
)
src = app.topic(source, key_type=bytes, value_type=bytes)
dst = app.topic(destination, key_type=bytes, value_type=bytes)


@app.agent(src)
async def passthrough(stream):  # type: ignore[no-untyped-def]
    async for event in stream.events():
        await dst.send(key=event.key, value=event.value)


if __name__ == "__main__":
    app.main()
