"""fab demo: what the reference article shows, live: the balancer's rotation, and a page
missed on one app server then hit on another (one shared cache pool)."""

from __future__ import annotations

import random

from rich.console import Console

from lab.errors import LabError
from lab.probing import probe
from lab.targets import Target


def balancer_url(target: Target, path: str) -> str:
    topo = target.topo
    return f"http://{topo.balancer.address}:{topo.ports.http}{path}"


def get(target: Target, *paths: str) -> list[dict]:
    """GET each path through the balancer, one after the other, from the traffic node."""
    results = probe(target, target.traffic_node(), "http",
                    *(balancer_url(target, p) for p in paths))
    for result in results:
        if not result["ok"]:
            raise LabError(f"GET {result['url']}: {result.get('error') or result['status']}")
    return results


def post(target: Target, path: str, **fields) -> dict:
    result = probe(target, target.traffic_node(), "post", balancer_url(target, path),
                   *(f"{k}={v}" for k, v in fields.items()))
    if not result["ok"]:
        raise LabError(f"POST {result['url']}: {result.get('error') or result['status']}")
    return result


def curl(console: Console, line: str) -> None:
    """The request as a student can repeat it, inside the client node (fab shell client)."""
    console.print(f"  [dim]\\[lab:client] $[/] [cyan]{line}[/]", soft_wrap=True)


def rotation(target: Target, console: Console, count: int) -> list[str]:
    console.print(f"{count} times (fab shell client, then):")
    curl(console, f"curl -s -o /dev/null -w '%header{{x-served-by}}\\n' "
                  f"{balancer_url(target, '/trivial')}")
    served = [r["served_by"] for r in get(target, *["/trivial"] * count)]
    console.print(f"{count} requests through the balancer went to: [bold]"
                  + " → ".join(served) + "[/]")
    return served


def miss_then_hit(target: Target, console: Console) -> tuple[dict, dict]:
    """Invalidate one product with a write, then read it twice through the balancer."""
    topo = target.topo
    product = random.randint(1, topo.site.products)
    stock = random.randint(0, 500)
    page = balancer_url(target, f"/products/{product}/")
    console.print("a write, then the same page read twice (fab shell client, then):")
    curl(console, f"curl -s -d stock={stock} {balancer_url(target, f'/products/{product}/update')}")
    for _ in range(2):
        curl(console, f"curl -si {page} | grep -iE '^x-(served-by|cache)'")
    post(target, f"/products/{product}/update", stock=stock)
    first, second = get(target, f"/products/{product}/", f"/products/{product}/")
    console.print(f"/products/{product}/ after a write: {first['cache']} on "
                  f"{first['served_by']}, then {second['cache']} on {second['served_by']}")
    return first, second


def run(target: Target, console: Console) -> None:
    console.rule("the balancer's round-robin")
    rotation(target, console, 2 * len(target.topo.apps))
    console.rule("one cache pool shared by all app servers")
    miss_then_hit(target, console)
