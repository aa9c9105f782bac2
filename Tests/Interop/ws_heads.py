#!/usr/bin/env python3
"""An independent WebSocket JSON-RPC client (the `websockets` package) against a node.

Subscribes to new and finalized heads on one connection, as Polkadot.js does, collects
notifications until FINALIZED finalized heads have arrived, then checks that each block
came once and in order:
  - finalized heads: consecutive numbers, each the child of the one before, none twice;
  - new heads: no hash twice, each block's parent reported before it (a reorganisation
    restarts from a reported block), every finalized block above the first new head (the
    best block at subscription, whose ancestors are history) also reported as a new head;
then unsubscribes both and checks that the notifications stop.

usage: ws_heads.py ws://127.0.0.1:9944 FINALIZED [TIMEOUT_SECONDS]
Prints one JSON summary line; exits 0 when every check holds, 1 otherwise.
"""
import asyncio
import json
import sys

import websockets


def fail(message):
    print(json.dumps({"ok": False, "error": message}))
    sys.exit(1)


async def main(url, want, timeout):
    async with websockets.connect(url, max_size=1 << 22) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "chain_subscribeNewHeads", "params": []}))
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "chain_subscribeFinalizedHeads", "params": []}))
        subs = {}
        heads, finalized = [], []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(finalized) < want:
            left = deadline - loop.time()
            if left <= 0:
                fail(f"only {len(finalized)} finalized heads within {timeout} s")
            message = json.loads(await asyncio.wait_for(ws.recv(), left))
            if "id" in message:
                if "result" not in message or not isinstance(message["result"], str):
                    fail(f"subscription refused: {message}")
                subs[message["result"]] = "new" if message["id"] == 1 else "finalized"
                continue
            params = message.get("params", {})
            kind = subs.get(params.get("subscription"))
            if kind is None:
                fail(f"notification for an unknown subscription (or before its id): {message}")
            header = params["result"]
            entry = (int(header["number"], 16), header["hash"], header["parentHash"])
            (heads if kind == "new" else finalized).append(entry)
            if kind == "new" and message.get("method") != "chain_newHead":
                fail(f"new head with method {message.get('method')}")
            if kind == "finalized" and message.get("method") != "chain_finalizedHead":
                fail(f"finalized head with method {message.get('method')}")

        # Finalized: consecutive, linked, once each.
        for (n0, h0, _), (n1, h1, p1) in zip(finalized, finalized[1:]):
            if n1 != n0 + 1 or p1 != h0:
                fail(f"finalized #{n1} {h1[:12]} does not follow #{n0} {h0[:12]}")
        if len({h for _, h, _ in finalized}) != len(finalized):
            fail("a finalized head came twice")
        # New heads: once each, parent first.
        seen = set()
        reorgs = 0
        first = heads[0][0] if heads else 0
        for i, (n, h, p) in enumerate(heads):
            if h in seen:
                fail(f"new head #{n} {h[:12]} came twice")
            # A block's parent came before it, unless the block replaces history from before
            # the subscription (a reorganisation below the first head reported).
            if i > 0 and p not in seen and n > first:
                fail(f"new head #{n} {h[:12]} came before its parent {p[:12]}")
            if i > 0 and p != heads[i - 1][1]:
                reorgs += 1
            seen.add(h)
        # The first new head is the best block at subscription: it and its ancestors are history,
        # so a block already in the best chain then but finalized only later (the two
        # subscriptions start a moment apart) is never a new head. Every block above it is.
        missing = [n for n, h, _ in finalized[1:] if h not in seen and n > first]
        if missing:
            fail(f"finalized blocks never reported as new heads: {missing[:5]}")

        # Unsubscribing stops the notifications.
        ids = {v: k for k, v in subs.items()}
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 3, "method": "chain_unsubscribeNewHeads", "params": [ids["new"]]}))
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 4, "method": "chain_unsubscribeFinalizedHeads", "params": [ids["finalized"]]}))
        answers = {}
        quiet_until = None
        while True:
            left = (quiet_until or deadline + 10) - loop.time()
            if left <= 0:
                break
            try:
                message = json.loads(await asyncio.wait_for(ws.recv(), left))
            except asyncio.TimeoutError:
                break
            if message.get("id") in (3, 4):
                answers[message["id"]] = message.get("result")
                if len(answers) == 2:
                    quiet_until = loop.time() + 2.5
            elif len(answers) == 2:
                fail(f"a notification after unsubscribing: {message}")
        if answers != {3: True, 4: True}:
            fail(f"unsubscribe answers: {answers}")
        print(json.dumps({"ok": True, "newHeads": len(heads), "finalized": len(finalized), "firstFinalized": finalized[0][0],
                          "lastFinalized": finalized[-1][0], "lastHead": heads[-1][0] if heads else None, "reorgs": reorgs}))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 120))
