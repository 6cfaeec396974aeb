"""Named resources (investigations, anomalies, known issues, findings, approvals, silences) in the
style of Google's API Improvement Proposals: one store, standard methods, HTTP routes and a client.

- :class:`ResourceService` (``service.py``): Get/List/Create/Update/Delete with etags and masks.
- :func:`open_store` (``store.py``): the backend named by ``agents.resources_uri`` (SQLite).
- :func:`routes` (``http.py``): aiohttp routes under ``/v1/`` and the ``/ui`` page.
- :class:`ResourceClient` (``client.py``): the same methods from Python over HTTP.
"""

from agents.resources.client import ResourceClient
from agents.resources.http import resource_app, routes
from agents.resources.service import Page, ResourceService
from agents.resources.store import ResourceStore, ResourceTransaction, open_store

__all__ = [
    "Page",
    "ResourceClient",
    "ResourceService",
    "ResourceStore",
    "ResourceTransaction",
    "open_store",
    "resource_app",
    "routes",
]
