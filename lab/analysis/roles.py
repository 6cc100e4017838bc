"""Who is who in a capture: the balancer, its front endpoint, and so clients and backends.

Found from the number of requests per route (client address, server address, server
port): a few counters, whatever the length of the capture.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from lab.analysis.errors import CaptureError

CLIENT, UPSTREAM = "client", "upstream"

Route = tuple[str, str, int]  # (client address, server address, server port)


@dataclass(frozen=True)
class Roles:
    balancer: str  # the balancer's address
    front: tuple[str, int] | None  # its listening endpoint: (address, port)

    def side(self, route: Route) -> str | None:
        """CLIENT for client→balancer requests, UPSTREAM for balancer→app, else None."""
        client, server, port = route
        if (server, port) == self.front:
            return CLIENT
        if client == self.balancer:
            return UPSTREAM
        return None


def find_roles(routes: Counter[Route], path: str) -> Roles:
    """The balancer is the address that both receives and sends HTTP requests.

    Failing that (a capture of the app side only), the one client that sends to two or
    more servers stands in for it. Its front is its busiest endpoint: when the balancer's
    address also sends requests to itself (client on the balancer host, or a whole lab on
    localhost), the front gets every request, each app only its share.
    """
    balancer = _find_balancer(routes, path)
    at_balancer: Counter[tuple[str, int]] = Counter()
    for (_, server, port), count in routes.items():
        if server == balancer:
            at_balancer[(server, port)] += count
    front = at_balancer.most_common(1)[0][0] if at_balancer else None
    return Roles(balancer, front)


def _find_balancer(routes: Counter[Route], path: str) -> str:
    received: Counter[str] = Counter()
    sent: Counter[str] = Counter()
    servers: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for (client, server, port), count in routes.items():
        received[server] += count
        sent[client] += count
        servers[client].add((server, port))
    both = [address for address in received if address in sent]
    if both:
        return max(both, key=lambda a: (min(received[a], sent[a]), received[a] + sent[a]))
    spreading = [address for address, seen in servers.items() if len(seen) >= 2]
    if spreading:
        return max(spreading, key=lambda a: sent[a])
    talk = ", ".join(sorted({f"{client} -> {server}:{port}"
                             for client, server, port in routes}))
    raise CaptureError(
        f"no balancer in capture {path}: requests only go {talk[:200]}, and no address both "
        "receives and sends HTTP requests; capture on the balancer's interface so that "
        "client→balancer and balancer→app traffic are both in it"
    )
