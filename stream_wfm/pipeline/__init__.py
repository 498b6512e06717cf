"""The pipeline, in the order a record goes through it.

``consumer`` (the consumer thread; ``commands``, ``commits``, ``input_hold``)
→ ``intake`` (decode → join config → filter) → ``submit`` (format → lane)
→ ``lanes`` (deliver) → ``attempts`` (count, decide) → ``settle`` (finish,
retry, defer, dead-letter). Retry-topic records wait in ``retry_gate``;
``backpressure`` counts what is unfinished; ``offsets`` decides what may be
committed; ``handback`` gives revoked partitions back; ``pipeline`` wires the
loop-side parts together.
"""
