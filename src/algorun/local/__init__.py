"""`algorun run`: one pipeline as supervised local processes, on the embedded log or a real Kafka."""
