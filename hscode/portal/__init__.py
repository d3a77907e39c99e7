"""Client and parsers for the customs law portal (CLIP), per docs/clip-portal.md."""

from hscode.portal.parse import (
    DetailRecord,
    ListItem,
    ListPage,
    PortalFormatError,
    parse_detail,
    parse_list,
)

__all__ = [
    "DetailRecord",
    "ListItem",
    "ListPage",
    "PortalFormatError",
    "parse_detail",
    "parse_list",
]
