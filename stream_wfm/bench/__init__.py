"""``stream-wfm bench``: the real service against an embedded broker and a minimal receiver.

Modules:

* :mod:`~stream_wfm.bench.receiver` — the minimal HTTP/1.1 receiver, its own process;
* :mod:`~stream_wfm.bench.rawpost` — the raw POST loop baseline of each HTTP client, its own
  process;
* :mod:`~stream_wfm.bench.rawconsume` — the raw confluent-kafka consume baselines;
* :mod:`~stream_wfm.bench.workload` — the events and integrations the bench produces;
* :mod:`~stream_wfm.bench.service_proc` — ``stream-wfm run`` as a measured subprocess;
* :mod:`~stream_wfm.bench.runner` — the scenarios, the targets and the table.
"""
