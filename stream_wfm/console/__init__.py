"""The admin console (docs/contract.md §9): the "Generic HTTP" WFM integration pages.

Server-rendered HTML on aiohttp, reading integrations through the same
:class:`~stream_wfm.integrations.store.ConfigStore` as the service and writing
them with the same validator and :class:`~stream_wfm.integrations.writer.ConfigWriter`
as ``stream-wfm config put``. ``create_app`` in :mod:`stream_wfm.console.app`
builds the application; ``stream-wfm console`` serves it.
"""
