"""``stream-wfm demo``: the whole flow on one machine, in about half a minute.

* :mod:`~stream_wfm.demo.samples` — sample integrations and a replayed day of
  platform events;
* :mod:`~stream_wfm.demo.receiver` — the demo webhook receiver (also served on
  its own by ``stream-wfm receiver``);
* :mod:`~stream_wfm.demo.summary` — the end-of-run report;
* :mod:`~stream_wfm.demo.runner` — the orchestration.
"""
