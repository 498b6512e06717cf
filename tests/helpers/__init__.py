"""Helpers for the tests (never shipped): one of each kind, named by their job.

* :mod:`~tests.helpers.settings` — settings with unique group and topic names, and the
  ``STREAM_WFM_*`` environment that reproduces them;
* :mod:`~tests.helpers.service` — ``stream-wfm run`` as a subprocess;
* :mod:`~tests.helpers.receiver` — a recording webhook receiver on 127.0.0.1;
* :mod:`~tests.helpers.topics` — producing to and reading whole topics;
* :mod:`~tests.helpers.config` — writing and deleting integrations;
* :mod:`~tests.helpers.events` — numbered agent events and their order as received;
* :mod:`~tests.helpers.waiting` — waiting for a condition with a deadline.

``tests/conftest.py`` holds the fixtures built on them.
"""
