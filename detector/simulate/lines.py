"""Log line templates of the simulated services, in the dialect of each service's stack.

Renderers take a ``random.Random`` and return ``(level, message)``; request lines also take the
request's duration. Each service has many templates (request lines with ids, paths, users, addresses
and durations; its own failure modes; benign warnings; background jobs; start-up and shut-down lines),
so that a template miner sees a realistic, uneven mix rather than a handful of fixed strings.
"""

from __future__ import annotations

import random

WORDS = ("running shoes", "rain jacket", "usb-c cable", "coffee grinder", "yoga mat", "desk lamp", "backpack",
         "headphones", "water bottle", "wool socks", "phone case", "air fryer", "notebook", "sunglasses")
AGENTS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
          "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
          "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
          "shop-android/4.12.0 (Linux; Android 14; Pixel 8)", "shop-ios/4.11.2 (iPhone15,2; iOS 17.4)",
          "okhttp/4.12.0", "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0")
CLIENTS = ("web-app", "shop-ios", "shop-android", "partner-feed", "checkout", "payments")
PROVIDERS = ("adyen", "stripe", "paypal")
CURRENCIES = ("EUR", "EUR", "EUR", "GBP", "USD", "CHF")


def rid(r: random.Random) -> str:
    return f"{r.getrandbits(64):016x}"


def uid(r: random.Random) -> str:
    return f"u-{r.randrange(10_000, 999_999)}"


def client_ip(r: random.Random) -> str:
    return f"{r.choice((81, 84, 92, 151, 176, 185, 212))}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"


def pod_ip(r: random.Random) -> str:
    return f"10.4.{r.randrange(0, 16)}.{r.randrange(2, 250)}"


def order_id(r: random.Random) -> str:
    return f"ord-{r.getrandbits(32):08x}"


def sku(r: random.Random) -> str:
    return f"SKU-{r.randrange(10_000, 60_000)}"


def txn(r: random.Random) -> str:
    return "txn_" + "".join(r.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789") for _ in range(14))


def amount(r: random.Random) -> str:
    return f"{r.lognormvariate(3.6, 0.8):.2f}"


# -- api-gateway (nginx access log, JSON-wrapped by the shipper) ------------------------------------

GATEWAY_ROUTES = (  # (weight, method, path maker, upstream)
    (30, "GET", lambda r: f"/api/v1/search?q={r.choice(WORDS).replace(' ', '+')}&page={r.randrange(1, 4)}", "search"),
    (26, "GET", lambda r: f"/api/v1/products/{sku(r)}", "inventory"),
    (14, "GET", lambda r: "/api/v1/cart", "checkout"),
    (8, "POST", lambda r: "/api/v1/cart/items", "checkout"),
    (4, "POST", lambda r: "/api/v1/checkout", "checkout"),
    (9, "POST", lambda r: "/api/v1/auth/token", "auth"),
    (5, "GET", lambda r: f"/api/v1/orders/{order_id(r)}", "checkout"),
    (4, "GET", lambda r: "/api/v1/auth/userinfo", "auth"),
)
_ROUTE_WEIGHTS = [w for w, *_ in GATEWAY_ROUTES]


def gateway_access(r: random.Random, ms: float, status: int | None = None, upstream: str | None = None) -> str:
    _, method, path, up = r.choices(GATEWAY_ROUTES, _ROUTE_WEIGHTS)[0]
    if status is None:
        status = r.choices((200, 201, 304, 404, 401, 429), (86, 4, 5, 3, 1.5, 0.5))[0]
    size = 0 if status == 304 else int(r.lognormvariate(7.2, 1.0))
    rt = ms / 1000.0
    return (f'{client_ip(r)} - - "{method} {path(r)} HTTP/1.1" {status} {size} "-" "{r.choice(AGENTS)}" '
            f"rt={rt:.3f} uct={min(rt, 0.001 + r.random() * 0.002):.3f} upstream={upstream or up}:8080 "
            f"req_id={rid(r)}")


def gateway_ok(r, ms):
    msg = gateway_access(r, ms)
    return ("warn" if '" 429 ' in msg else "info"), msg


def gateway_error(r, ms):
    status = r.choices((502, 500, 503, 504), (5, 2, 1, 2))[0]
    return "error", gateway_access(r, ms, status)


# -- auth (Go, logfmt-ish) ---------------------------------------------------------------------------

def auth_ok(r, ms):
    k = r.random()
    if k < 0.55:
        return "info", f"token validated sub={uid(r)} client_id={r.choice(CLIENTS)} latency={ms:.1f}ms"
    if k < 0.8:
        return "info", (f'token issued user_id={uid(r)} client_id={r.choice(CLIENTS[:4])} scope="read write" '
                        f"ttl=3600s latency={ms:.1f}ms remote={client_ip(r)}:{r.randrange(30000, 65000)}")
    if k < 0.93:
        return "info", f"token refreshed user_id={uid(r)} client_id={r.choice(CLIENTS[:4])} latency={ms:.1f}ms"
    return "info", f"userinfo served sub={uid(r)} latency={ms:.1f}ms"


def auth_error(r, ms):
    k = r.random()
    if k < 0.55:
        return "warn", f"login failed user_id={uid(r)} reason=invalid_password remote={client_ip(r)}:{r.randrange(30000, 65000)}"
    if k < 0.9:
        return "warn", f"token rejected: token is expired sub={uid(r)} client_id={r.choice(CLIENTS)}"
    return "error", f"userstore query failed: context deadline exceeded user_id={uid(r)} latency={ms:.1f}ms"


# -- checkout (Python, structured key=value) -----------------------------------------------------------

def checkout_ok(r, ms):
    k = r.random()
    if k < 0.3:
        return "info", f"cart fetched user_id={uid(r)} items={r.randrange(0, 9)} duration_ms={ms:.0f} request_id={rid(r)}"
    if k < 0.55:
        return "info", (f"cart item added user_id={uid(r)} sku={sku(r)} qty={r.randrange(1, 4)} "
                        f"duration_ms={ms:.0f} request_id={rid(r)}")
    if k < 0.7:
        return "info", (f"order placed order_id={order_id(r)} user_id={uid(r)} items={r.randrange(1, 7)} "
                        f"amount={amount(r)} currency={r.choice(CURRENCIES)} duration_ms={ms:.0f} request_id={rid(r)}")
    if k < 0.85:
        return "info", f"order fetched order_id={order_id(r)} user_id={uid(r)} duration_ms={ms:.0f} request_id={rid(r)}"
    if k < 0.95:
        return "info", f"shipping quote computed user_id={uid(r)} carrier={r.choice(('dhl', 'ups', 'dpd'))} duration_ms={ms:.0f} request_id={rid(r)}"
    return "warn", f"order rejected order_id={order_id(r)} reason=payment_declined user_id={uid(r)} request_id={rid(r)}"


def checkout_error(r, ms):
    k = r.random()
    if k < 0.5:
        return "error", (f'request failed method=POST path=/api/v1/checkout status=502 error="payments returned 502 '
                         f'Bad Gateway" duration_ms={ms:.0f} request_id={rid(r)}')
    if k < 0.8:
        return "error", (f"request failed method=POST path=/api/v1/cart/items status=500 error=\"psycopg2.errors."
                         f"SerializationFailure: could not serialize access due to concurrent update\" "
                         f"duration_ms={ms:.0f} request_id={rid(r)}")
    return "error", (f'request failed method=GET path=/api/v1/orders/{order_id(r)} status=503 error="redis: '
                     f'connection pool timeout" duration_ms={ms:.0f} request_id={rid(r)}')


# -- payments (Java / Spring) --------------------------------------------------------------------------

def payments_ok(r, ms):
    k = r.random()
    if k < 0.62:
        return "info", (f"Charge authorized txnId={txn(r)} orderId={order_id(r)} amount={amount(r)} "
                        f"{r.choice(CURRENCIES)} provider={r.choice(PROVIDERS)} latency={ms:.0f}ms")
    if k < 0.8:
        return "info", f"Capture completed txnId={txn(r)} provider={r.choice(PROVIDERS)} latency={ms:.0f}ms"
    if k < 0.88:
        return "info", f"Refund processed txnId={txn(r)} orderId={order_id(r)} amount={amount(r)} latency={ms:.0f}ms"
    if k < 0.97:
        return "warn", (f"Charge declined txnId={txn(r)} orderId={order_id(r)} provider={r.choice(PROVIDERS)} "
                        f"reason={r.choice(('insufficient_funds', 'card_expired', 'do_not_honor'))}")
    return "warn", f"Idempotency key reused orderId={order_id(r)}, returning stored result"


def payments_error(r, ms):
    p = r.choice(PROVIDERS)
    if r.random() < 0.7:
        return "error", (f"Charge failed txnId={txn(r)} provider={p}: ProviderException: HTTP 502 from {p} "
                         f"after {ms:.0f}ms")
    return "error", f"Capture failed txnId={txn(r)} provider={p}: SocketTimeoutException: Read timed out"


# -- inventory (Java / Spring + Hibernate) ----------------------------------------------------------------

def inventory_ok(r, ms):
    k = r.random()
    if k < 0.55:
        return "info", f"Stock lookup sku={sku(r)} available={r.randrange(0, 400)} in {ms:.0f}ms"
    if k < 0.8:
        return "info", (f"Reserved {r.randrange(1, 4)} units sku={sku(r)} order={order_id(r)} "
                        f"remaining={r.randrange(0, 400)} in {ms:.0f}ms")
    if k < 0.95:
        return "info", f"Released reservation order={order_id(r)} sku={sku(r)} in {ms:.0f}ms"
    return "warn", f"Reservation rejected sku={sku(r)} order={order_id(r)}: out of stock"


def inventory_error(r, ms):
    return "error", (f"Reservation failed sku={sku(r)} order={order_id(r)}: OptimisticLockException: Row was "
                     f"updated or deleted by another transaction")


# -- search (Java, Elasticsearch-style) ---------------------------------------------------------------

def search_ok(r, ms):
    if r.random() < 0.85:
        return "info", (f'search q="{r.choice(WORDS)}" hits={int(r.lognormvariate(5, 1))} took={ms:.0f}ms '
                        f"page={r.randrange(1, 4)} shards=5/5")
    return "info", f"suggest prefix=\"{r.choice(WORDS)[:r.randrange(2, 6)]}\" options={r.randrange(0, 10)} took={ms:.0f}ms"


def search_error(r, ms):
    return "error", (f'search failed q="{r.choice(WORDS)}": SearchPhaseExecutionException: all shards failed '
                     f"(shard [products][{r.randrange(5)}] timed out)")


REQUESTS = {
    "api-gateway": (gateway_ok, gateway_error),
    "auth": (auth_ok, auth_error),
    "checkout": (checkout_ok, checkout_error),
    "payments": (payments_ok, payments_error),
    "inventory": (inventory_ok, inventory_error),
    "search": (search_ok, search_error),
}


# -- benign warnings: real, occasional, and no sign of trouble -------------------------------------------

def _benign_gateway(r):
    if r.random() < 0.6:
        return "warn", (f"an upstream response is buffered to a temporary file /var/cache/nginx/proxy_temp/"
                        f"{r.randrange(10)}/{r.randrange(10, 99)}/00000{r.randrange(10000, 99999)} while reading upstream")
    return "warn", f'client sent invalid header line: "X-Forwarded-For\\x00" while reading client request headers, client: {client_ip(r)}'


def _benign_auth(r):
    return "warn", f"rate limit exceeded client_id={r.choice(CLIENTS[:4])} remote={client_ip(r)} limit=120/min"


def _benign_checkout(r):
    if r.random() < 0.5:
        return "warn", f"slow request method=POST path=/api/v1/checkout duration_ms={r.randrange(1500, 2600)} request_id={rid(r)}"
    return "warn", f"retrying payments charge attempt=2/3 after status=502 request_id={rid(r)}"


def _benign_payments(r):
    p = r.choice(PROVIDERS)
    return "warn", f"Provider {p} slow response {r.uniform(2.0, 3.5):.1f}s txnId={txn(r)}"


def _benign_inventory(r):
    return "warn", f"Slow query ({r.randrange(300, 700)} ms): select s.sku, s.available from stock s where s.sku = ? for update"


def _benign_search(r):
    return "warn", f'slow query took [{r.uniform(1.0, 2.0):.1f}s] q="{r.choice(WORDS)}" index [products]'


BENIGN = {"api-gateway": _benign_gateway, "auth": _benign_auth, "checkout": _benign_checkout,
          "payments": _benign_payments, "inventory": _benign_inventory, "search": _benign_search}


# -- start-up and shut-down ------------------------------------------------------------------------------

def shutdown_lines(style: str, app: str) -> list[tuple[float, str, str]]:
    """(seconds before the stop, level, message)."""
    if style == "java":
        return [(4.0, "info", "Commencing graceful shutdown. Waiting for active requests to complete"),
                (1.0, "info", "Graceful shutdown complete")]
    if style == "python":
        return [(3.0, "info", "Handling signal: term"), (1.0, "info", "Shutting down: Master")]
    if style == "go":
        return [(2.0, "info", "shutting down: signal terminated"), (0.5, "info", "server stopped")]
    return [(1.0, "info", "signal 15 (SIGTERM) received, exiting"), (0.2, "info", "exit")]


def startup_lines(style: str, app: str, version: str, host: str) -> list[tuple[float, str, str]]:
    """(seconds after the start, level, message)."""
    if style == "java":
        return [(0.3, "info", f"Starting {app} v{version} using Java 17.0.9 with PID 1"),
                (3.1, "info", "Tomcat initialized with port 8080 (http)"),
                (6.8, "info", "HikariPool-1 - Start completed."),
                (8.4, "info", f"Started {app} in 8.1 seconds (process running for 8.9)")]
    if style == "python":
        return [(0.2, "info", "Starting gunicorn 21.2.0"),
                (0.3, "info", "Listening at: http://0.0.0.0:8000 (1)"),
                (0.4, "info", "Using worker: uvicorn.workers.UvicornWorker"),
                (1.9, "info", f"{app} {version} ready on {host}")]
    if style == "go":
        return [(0.1, "info", f"starting {app} version={version} commit=3e1f2a9"),
                (0.4, "info", "listening on :8443 (tls)")]
    return [(0.1, "info", "using the \"epoll\" event method"),
            (0.1, "info", f"nginx/{version}"),
            (0.2, "info", "start worker processes")]
