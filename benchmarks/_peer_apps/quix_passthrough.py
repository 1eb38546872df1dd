"""Quix Streams passthrough, configured per its docs for at-least-once: `processing_guarantee="at-least-once"`
(its default; a checkpoint flushes the producer before it commits the consumed offsets), bytes in and out."""

import sys

from quixstreams import Application


def main(bootstrap: str, source: str, destination: str, group: str) -> None:
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        processing_guarantee="at-least-once",
        auto_create_topics=False,
        use_changelog_topics=False,
        loglevel="WARNING",
    )
    src = app.topic(source, key_deserializer="bytes", value_deserializer="bytes")
    dst = app.topic(destination, key_serializer="bytes", value_serializer="bytes")
    app.dataframe(src).to_topic(dst)
    app.run()


if __name__ == "__main__":
    main(*sys.argv[1:5])
