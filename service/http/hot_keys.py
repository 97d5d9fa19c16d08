"""Typed application state of hot items (the saves' and reads' event counter, the top lists)."""

from __future__ import annotations

from aiohttp import web

from service.hot.aggregate import Aggregator
from service.hot.events import HotEvents

HOT_EVENTS = web.AppKey("hot_events", HotEvents)
HOT_VIEW = web.AppKey("hot_view", Aggregator)
