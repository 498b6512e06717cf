"""``stream-wfm bench``: the real service against an embedded broker and a minimal receiver.

Modules:

* :mod:`~stream_wfm.bench.receiver` — the minimal HTTP/1.1 receiver, its own process;
* :mod:`~stream_wfm.bench.rawpost` — the raw POST loop baseline of each HTTP client, its own
  process;
* :mod:`~stream_wfm.bench.rawconsume` — the raw confluent-kafka consume baselines;
* :mod:`~stream_wfm.bench.workload` — the events and integrations the bench produces;
* :mod:`~stream_wfm.bench.service_proc` — ``stream-wfm run`` as a measured subprocess;
* :mod:`~stream_wfm.bench.harness` — the run's options, broker, receiver and service runs;
* :mod:`~stream_wfm.bench.baselines` — the raw POST loop and raw consume baselines;
* :mod:`~stream_wfm.bench.scenarios` — the service scenarios and what each measures;
* :mod:`~stream_wfm.bench.signing` — what signing one request costs, in-process;
* :mod:`~stream_wfm.bench.report` — the result, its ratios to the baselines, the table;
* :mod:`~stream_wfm.bench.runner` — one run: its phases in order.
"""
