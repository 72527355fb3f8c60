"""The router's pure rules: the dispatch catalogue, the routing decision and a case's state changes."""

from services.router.domain.catalogue import CatalogueError, DispatchCatalogue, load_catalogue, parse_catalogue
from services.router.domain.routing import Routing, RoutingFacts, decide

__all__ = [
    "CatalogueError",
    "DispatchCatalogue",
    "Routing",
    "RoutingFacts",
    "decide",
    "load_catalogue",
    "parse_catalogue",
]
