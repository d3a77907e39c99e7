"""Why a request to the CLIP portal failed: ``PortalError`` and its kinds."""

from __future__ import annotations


class PortalError(RuntimeError):
    """A request to the portal that did not succeed; ``reason`` says why."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class PortalHTTPError(PortalError):
    """A status we do not retry (4xx other than 429 and session losses)."""


class RetriesExhausted(PortalError):
    """Still failing after settings.max_retries retries."""


class RobotsDisallowed(PortalError):
    """robots.txt does not allow this URL for our User-Agent."""


class ImageRefused(PortalError):
    """An image URL outside the portal's own origin: never fetched."""


class ResponseTooLarge(PortalHTTPError):
    """A body over the size limit: reading stopped there, nothing stored, not retried."""
