"""py-callout: a trivial allow handler on the PyPI `nats-callout` library (0.1.1), served with
nats-py. Used only by bench/run.ts as a peer in the connect storm.

nats-callout does the request decode/verify and the user/response JWT encoding; it brings no
NATS transport (its README uses FastStream), so this script subscribes with nats-py and passes
each request body to the library. Secrets come from the environment: PY_CALLOUT_PASS,
PY_CALLOUT_ISSUER_SEED. Prints "ready" on stdout once subscribed.
"""

import argparse
import asyncio
import json
import os
import signal
import sys

import nats
import nkeys
from nats_callout import AdaptixEncoder, BaseAuthCalloutService
from nats_callout.claims import AuthRequestData, UserData
from nats_callout.claims.user import PubSubPermissions


class AllowAll(BaseAuthCalloutService):
    def __init__(self, seed: str, account: str) -> None:
        self.nkey_seed = seed
        self.account = account
        enc = AdaptixEncoder()
        # The library's encoder signs with `kp` and parses payloads with `json_loads`, but
        # sets neither itself: a caller must.
        enc.kp = nkeys.from_seed(seed.encode())
        enc.json_loads = lambda p: p if isinstance(p, dict) else json.loads(p)
        enc.json_dumps = json.dumps
        self.encoder = enc

    async def _handle_auth_request_data(self, auth_request_data: AuthRequestData) -> UserData:
        return UserData(
            type="user",
            pub=PubSubPermissions(allow=[">"], deny=[]),
            sub=PubSubPermissions(allow=[">"], deny=[]),
            # The library leaves limits at None, which it writes as JSON null; the server reads
            # that as 0 ("maximum subscriptions exceeded"), so unlimited must be explicit.
            subs=-1,
            data=-1,
            payload=-1,
        )


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="nats://127.0.0.1:4222")
    ap.add_argument("--user", default="callout")
    ap.add_argument("--account", default="APP")
    ap.add_argument("--queue", default="auth-callout")
    args = ap.parse_args()

    svc = AllowAll(os.environ["PY_CALLOUT_ISSUER_SEED"], args.account)
    stats = {"allowed": 0, "errors": 0}
    nc = await nats.connect(
        args.url,
        user=args.user,
        password=os.environ.get("PY_CALLOUT_PASS", ""),
        name="py-callout",
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.1,
    )

    async def on_request(msg) -> None:
        try:
            token = await svc(msg.data)
        except Exception as exc:  # the library raises on undecodable requests: drop, as an abort
            stats["errors"] += 1
            if stats["errors"] <= 3:
                print(f"py-callout: request failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return
        await msg.respond(token.encode())
        stats["allowed"] += 1

    await nc.subscribe("$SYS.REQ.USER.AUTH", queue=args.queue, cb=on_request, pending_msgs_limit=1_000_000)
    await nc.flush()
    print("ready", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(s, stop.set)
    await stop.wait()
    await nc.drain()
    print(f"py-callout: allowed={stats['allowed']} errors={stats['errors']}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
