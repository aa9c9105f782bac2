#!/usr/bin/env python3
"""Bootstrap/devnet: a private Tensormesh network on loopback (see Bootstrap/devnet)."""

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSWORD_ENV = "TM_DEVNET_PASSWORD"
PASSWORD = "devnet-password-not-secret"


def log(msg):
    print(f"devnet: {msg}", file=sys.stderr, flush=True)


def die(msg, code=1):
    log(msg)
    sys.exit(code)


def default_dir():
    return os.environ.get("TENSORMESH_DEVNET_DIR", os.path.join(ROOT, ".devnet"))


def manifest_path(d):
    return os.path.join(d, "devnet.json")


MARKER = ".tensormesh-devnet"


def is_devnet_dir(d):
    """A folder `up` and `down` may delete: one they made (marker or manifest), or an empty one."""
    if not os.path.exists(d):
        return True
    if not os.path.isdir(d):
        return False
    entries = os.listdir(d)
    return not entries or MARKER in entries or "devnet.json" in entries


def refuse_foreign_dir(d):
    if not is_devnet_dir(d):
        die(f"{d} is not a devnet folder (no {MARKER} or devnet.json) and not empty: refusing to use or delete it", 2)


def save_manifest(d, manifest):
    """Written again as each process starts, so `down` finds everything even after a failure."""
    tmp = manifest_path(d) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2)
    os.replace(tmp, manifest_path(d))


def ours(pid, d):
    """Whether a live pid is a process this devnet started (they all run in its folder), not a
    recycled pid of something else."""
    if not alive(pid):
        return False
    try:
        return os.path.realpath(os.readlink(f"/proc/{pid}/cwd")) == os.path.realpath(d)
    except OSError:
        return False


def recorded_pids(d, m):
    """Every pid the manifest or a pid file under d names."""
    pids = {n["pid"] for n in (m or {}).get("nodes", []) + [(m or {}).get("gateway") or {}] if n.get("pid")}
    piddir = os.path.join(d, "pids")
    if os.path.isdir(piddir):
        for f in os.listdir(piddir):
            try:
                with open(os.path.join(piddir, f)) as fh:
                    pids.add(int(fh.read().strip()))
            except (OSError, ValueError):
                pass
    return sorted(pids)


def signal_pid(pid, sig):
    """The process's group (devnet children lead their own), or the process alone."""
    try:
        os.killpg(pid, sig)
    except OSError:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def stop_pids(pids, grace=15):
    for pid in pids:
        signal_pid(pid, signal.SIGTERM)
    deadline = time.time() + grace
    while time.time() < deadline and any(alive(p) for p in pids):
        time.sleep(0.2)
    for pid in pids:
        if alive(pid):
            signal_pid(pid, signal.SIGKILL)


def load_manifest(d):
    try:
        with open(manifest_path(d)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A zombie is not alive.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def rpc(port, method, params=None, timeout=2.0, host="127.0.0.1"):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    req = urllib.request.Request(f"http://{host}:{port}/", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        reply = json.load(r)
    if "error" in reply:
        raise RuntimeError(reply["error"].get("message", "error"))
    return reply["result"]


def port_free(port):
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def run(args, env=None, capture=True):
    e = dict(os.environ)
    if env:
        e.update(env)
    r = subprocess.run(args, env=e, capture_output=capture, text=True)
    if r.returncode != 0:
        die(f"{' '.join(args[:4])} … failed ({r.returncode}): {(r.stderr or '').strip()[-2000:]}")
    return r.stdout


BRIDGE = "tmbr0"


def sh(*args):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if r.returncode != 0:
        die(f"{' '.join(args)} failed: {r.stderr.strip()}")


def netns_create(names, prefix):
    """One network namespace per process, each with a veth to a bridge in the root namespace:
    every process gets its own address (prefix.10, prefix.11, ...), like separate hosts."""
    if os.geteuid() != 0:
        die("--netns needs root (it creates network namespaces and a bridge)")
    if shutil.which("ip") is None:
        die("--netns needs the `ip` tool (apt-get install iproute2)")
    if bridge_exists():
        if live_devnet_namespaces():
            die(f"bridge {BRIDGE} is in use by a running netns devnet (`Bootstrap/devnet down --dir DIR` for its folder)")
        log(f"removing a stale bridge {BRIDGE} and empty tm-* namespaces left by an earlier devnet")
        remove_stale_netns()
    sh("ip", "link", "add", BRIDGE, "type", "bridge")
    sh("ip", "addr", "add", f"{prefix}.1/24", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")
    hosts = {}
    for k, name in enumerate(names):
        ns = f"tm-{name}"
        ip = f"{prefix}.{10 + k}"
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", f"tmv{k}", "type", "veth", "peer", "name", f"tmp{k}")
        sh("ip", "link", "set", f"tmp{k}", "netns", ns)
        sh("ip", "link", "set", f"tmv{k}", "master", BRIDGE, "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{ip}/24", "dev", f"tmp{k}")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", f"tmp{k}", "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        sh("ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", f"{prefix}.1")
        hosts[name] = (ns, ip)
    return hosts


def bridge_exists():
    return shutil.which("ip") is not None and subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True).returncode == 0


def devnet_namespaces():
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True) if shutil.which("ip") else None
    if r is None or r.returncode != 0:
        return []
    return [line.split()[0] for line in r.stdout.splitlines() if line.startswith("tm-")]


def live_devnet_namespaces():
    live = []
    for ns in devnet_namespaces():
        r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
        if r.stdout.strip():
            live.append(ns)
    return live


def remove_stale_netns():
    """The bridge and the tm-* namespaces no process runs in (left by a devnet that died)."""
    if os.geteuid() != 0:
        return
    live = set(live_devnet_namespaces())
    for ns in devnet_namespaces():
        if ns not in live:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    if not live:
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)


def netns_delete(names):
    for ns in names:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)


def build(config):
    log(f"building tensormesh and tmsubnet ({config}; the first build takes a few minutes)")
    r = subprocess.run(["swift", "build", "-c", config, "--product", "tensormesh"], cwd=ROOT)
    if r.returncode != 0:
        die("build failed")
    r = subprocess.run(["swift", "build", "-c", config, "--product", "tmsubnet"], cwd=ROOT)
    if r.returncode != 0:
        die("build failed")
    out = subprocess.run(["swift", "build", "-c", config, "--show-bin-path"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return out


def start(d, name, args, env):
    logs = os.path.join(d, "logs")
    os.makedirs(logs, exist_ok=True)
    out = open(os.path.join(logs, f"{name}.log"), "ab")
    e = dict(os.environ)
    e.update(env)
    p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=e, start_new_session=True, cwd=d)
    piddir = os.path.join(d, "pids")
    os.makedirs(piddir, exist_ok=True)
    with open(os.path.join(piddir, f"{name}.pid"), "w") as f:
        f.write(f"{p.pid}\n")
    return p.pid


def cmd_up(a):
    d = os.path.abspath(a.dir)
    refuse_foreign_dir(d)
    m = load_manifest(d)
    if any(ours(p, d) for p in recorded_pids(d, m)):
        die(f"a devnet is already running under {d}; `Bootstrap/devnet down` first", 1)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    with open(os.path.join(d, MARKER), "w") as f:
        f.write("Bootstrap/devnet state; `Bootstrap/devnet down` removes this folder\n")
    state = {"dir": d, "nodes": [], "netns": [], "state": "starting", "started": int(time.time())}
    save_manifest(d, state)
    # Whatever happens from here (a failed step, Ctrl-C, SIGTERM), nothing started is left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even when started with SIGINT ignored
    try:
        up(a, d, state)
    except BaseException as e:
        log(f"{'interrupted' if isinstance(e, KeyboardInterrupt) else 'failed'}: stopping what was started")
        stop_pids([p for p in recorded_pids(d, state) if ours(p, d)], grace=5)
        if state.get("netns"):
            netns_delete(state["netns"])
        state["state"] = "failed"
        state["nodes"] = []
        save_manifest(d, state)
        log(f"logs kept in {d}/logs")
        if isinstance(e, KeyboardInterrupt):
            sys.exit(130)
        raise


def up(a, d, state):
    base = a.base_port
    validators = 4
    node_names = [f"validator-{i}" for i in range(validators)] + ["full-0"]
    netns = a.netns
    if netns:
        # Separate addresses: every process uses the default ports on its own address.
        p2p = [base] * (validators + 1)
        rpcp = [a.rpc_port] * (validators + 1)
        prom = [a.prometheus_port] * (validators + 1)
        axon = [a.axon_port] * 16
    else:
        p2p = [base + i for i in range(validators + 1)]
        rpcp = [a.rpc_port + i for i in range(validators + 1)]
        prom = [a.prometheus_port + i for i in range(validators + 1)]
        axon = [a.axon_port + i for i in range(16)]
        for p in p2p + rpcp + prom + axon + [base + 111, a.gateway_port]:
            if not port_free(p):
                die(f"port {p} is in use; pick other ports with --base-port/--rpc-port/--prometheus-port/--axon-port")

    binp = build("debug" if a.debug else "release")
    tm = os.path.join(binp, "tensormesh")
    sn = os.path.join(binp, "tmsubnet")
    env = {PASSWORD_ENV: PASSWORD, "TENSORMESH_WALLETS": os.path.join(d, "wallets")}

    # Wallets: one coldkey per subnet process, so their transactions never race on a nonce.
    processes = [
        ("predict-validator", 1, "subnet-validator", ["predict", "validator"]),
        # Four miners of graded quality: incentive should follow this order.
        ("predict-miner-zeros", 1, "miner", ["predict", "miner", "--strategy", "zeros"]),
        ("predict-miner-last", 1, "miner", ["predict", "miner", "--strategy", "last"]),
        ("predict-miner-seasonal", 1, "miner", ["predict", "miner", "--strategy", "seasonal"]),
        ("predict-miner-model", 1, "miner", ["predict", "miner", "--strategy", "model"]),
        ("storage-validator", 2, "subnet-validator", ["storage", "validator"]),
        ("storage-miner-1", 2, "miner", ["storage", "miner"]),
        ("storage-miner-2-relayed", 2, "miner", ["storage", "miner"]),
        ("storage-miner-lazy", 2, "miner", ["storage", "miner", "--lazy"]),
    ]
    hosts = {}
    if netns:
        log(f"creating network namespaces and bridge {BRIDGE} ({a.netns_prefix}.0/24)")
        state["netns"] = [f"tm-{n}" for n in node_names + [p[0] for p in processes]]
        save_manifest(d, state)
        hosts = netns_create(node_names + [p[0] for p in processes], a.netns_prefix)

    def host(name):
        return hosts[name][1] if netns else "127.0.0.1"

    def wrap(name, args):
        return ["ip", "netns", "exec", hosts[name][0]] + args if netns else args

    rpc_flags = ["--rpc-external"] if netns else []

    log("creating wallets")
    wallets = {}
    for name in [p[0] for p in processes] + ["gateway", NOMINATOR]:
        out = run([tm, "wallet", "create", "--wallet", name, "--hotkey", "default", "--password-env", PASSWORD_ENV, "--json"], env)
        wallets[name] = json.loads(out)

    log("writing the genesis and validator keys")
    spec_dir = os.path.join(d, "spec")
    endow = []
    for w in wallets.values():
        endow += ["--endow", f"{w['coldkey']}:1000"]
    out = run([tm, "genesis", "new", "--validators", str(validators), "--out", spec_dir, "--password-env", PASSWORD_ENV,
               "--name", "Tensormesh Devnet", "--id", "tensormesh-devnet", "--slot-ms", str(a.slot_ms), "--subnets", "2",
               "--subnet-name", "predict", "--subnet-name", "storage", "--tempo", str(a.tempo), "--weights-rate-limit", "5",
               "--host", "127.0.0.1", "--base-port", str(base), "--json"] + endow, env)
    genesis = json.loads(out)
    spec = genesis["chainSpec"]
    if netns:
        # Bootnodes at each validator's own address (not part of the genesis hash).
        with open(spec) as f:
            cs = json.load(f)
        ids = [v.split("@")[0] for v in genesis["validators"]]
        cs["bootnodes"] = [f"{ids[i]}@{host(f'validator-{i}')}:{base}" for i in range(validators)]
        with open(spec, "w") as f:
            json.dump(cs, f, indent=2)
    state.update({"chainSpec": spec, "genesis": genesis["genesis"], "passwordEnv": PASSWORD_ENV, "wallets": os.path.join(d, "wallets")})
    nodes = state["nodes"]
    for i in range(validators):
        key = os.path.join(spec_dir, f"validator-{i}.key")
        node_id = genesis["validators"][i].split("@")[0]
        name = f"validator-{i}"
        pid = start(d, name, wrap(name, [tm, "run", "--chain", spec, "--key", key, "--password-env", PASSWORD_ENV, "--validator",
                                         "--base-path", os.path.join(d, name), "--port", str(p2p[i]),
                                         "--listen-addr", host(name), "--rpc-port", str(rpcp[i]),
                                         "--prometheus-port", str(prom[i]), "--name", name] + rpc_flags), env)
        nodes.append({"name": name, "nodeId": node_id, "address": f"{node_id}@{host(name)}:{p2p[i]}", "host": host(name),
                      "rpcPort": rpcp[i], "prometheusPort": prom[i], "role": "validator", "pid": pid, "netuid": None, "hotkey": None})
        save_manifest(d, state)
    full_key = os.path.join(d, "full.key")
    relay_port = base + 111  # the full node also relays queries to miners behind NAT
    full_id = json.loads(run([tm, "key", "generate", "--out", full_key, "--password-env", PASSWORD_ENV, "--json"], env))["nodeId"]
    pid = start(d, "full-0", wrap("full-0", [tm, "run", "--chain", spec, "--key", full_key, "--password-env", PASSWORD_ENV,
                                             "--base-path", os.path.join(d, "full-0"), "--port", str(p2p[4]), "--listen-addr", host("full-0"),
                                             "--rpc-port", str(rpcp[4]), "--prometheus-port", str(prom[4]), "--name", "full-0",
                                             "--query-relay-port", str(relay_port)] + rpc_flags), env)
    nodes.append({"name": "full-0", "nodeId": full_id, "address": f"{full_id}@{host('full-0')}:{p2p[4]}", "host": host("full-0"),
                  "rpcPort": rpcp[4], "prometheusPort": prom[4], "role": "full", "pid": pid, "netuid": None, "hotkey": None})
    save_manifest(d, state)

    log("waiting for the first blocks")
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if rpc(rpcp[4], "chain_getHead", host=host("full-0"))["number"] >= 2:
                break
        except Exception:
            pass
        time.sleep(0.5)
    else:
        die(f"no blocks after 120 s; see {d}/logs")

    relay = f"{full_id}@{host('full-0')}:{relay_port}"

    for idx, (name, netuid, role, sub) in enumerate(processes):
        rpc_port = rpcp[idx % len(rpcp)]
        rpc_host = host(node_names[idx % len(node_names)])
        args = [sn] + sub + ["--rpc-url", f"http://{rpc_host}:{rpc_port}", "--netuid", str(netuid), "--wallet", name,
                             "--hotkey", "default", "--password-env", PASSWORD_ENV, "--name", name]
        if role == "miner":
            args += ["--port", str(axon[idx]), "--listen", host(name)]
            if "relayed" in name:
                args += ["--relay", relay]
            if sub[0] == "storage":
                args += ["--data-dir", os.path.join(d, name, "chunks"), "--budget-mib", "64"]
        else:
            args += ["--stake", "100", "--step-seconds", "3", "--timeout", "2", "--state", os.path.join(d, name, "validator-state.json")]
        pid = start(d, name, wrap(name, args), env)
        nodes.append({"name": name, "nodeId": None, "address": None, "host": host(name), "rpcPort": None, "prometheusPort": None, "role": role,
                      "pid": pid, "netuid": netuid, "hotkey": wallets[name]["hotkeyPublic"], "axonPort": axon[idx] if role == "miner" else None})
        save_manifest(d, state)

    # The apps gateway, in the root namespace on 127.0.0.1 (it reaches the nodes and miners
    # on their own addresses with --netns): one devnet API key, 10 requests per second.
    gateway_dir = os.path.join(d, "gateway")
    os.makedirs(gateway_dir, exist_ok=True)
    api_key = "tm-devnet-" + secrets.token_hex(16)
    keys_file = os.path.join(gateway_dir, "api-keys.json")
    with open(keys_file, "w") as f:
        json.dump({"keys": [{"name": "devnet", "key": api_key, "ratePerSecond": 10, "burst": 10},
                            {"name": "devnet-validator", "key": "tm-organic-" + secrets.token_hex(16), "ratePerSecond": 10,
                             "burst": 10, "organic": True}]}, f, indent=2)
    os.chmod(keys_file, 0o600)
    gateway_url = f"http://127.0.0.1:{a.gateway_port}"
    gateway_pid = start(d, "gateway", [tm, "gateway", "--rpc-url", f"http://{host('full-0')}:{rpcp[4]}", "--netuid", "1",
                                       "--storage-netuid", "2", "--listen", f"127.0.0.1:{a.gateway_port}", "--api-keys", keys_file,
                                       "--wallet", "gateway", "--hotkey", "default", "--password-env", PASSWORD_ENV, "--stake", "10",
                                       "--state-dir", gateway_dir, "--organic-sample", "0.1"], env)

    state["gateway"] = {"url": gateway_url, "apiKey": api_key, "pid": gateway_pid, "hotkey": wallets["gateway"]["hotkeyPublic"]}
    save_manifest(d, state)

    # Every child must be alive (a crash at start-up would otherwise pass unnoticed), and
    # every node must answer RPC.
    deadline = time.time() + 5
    while time.time() < deadline:
        dead = [n for n in nodes + [{"name": "gateway", "pid": gateway_pid}] if not alive(n["pid"])]
        if dead:
            tail = ""
            try:
                with open(os.path.join(d, "logs", f"{dead[0]['name']}.log")) as f:
                    tail = f.read()[-1500:]
            except OSError:
                pass
            die(f"{', '.join(n['name'] for n in dead)} exited at start-up; {dead[0]['name']}'s log ends:\n{tail}")
        time.sleep(0.5)
    for n in nodes:
        if n.get("rpcPort"):
            try:
                rpc(n["rpcPort"], "system_health", host=n["host"], timeout=5)
            except Exception as e:
                die(f"{n['name']} does not answer JSON-RPC on {n['host']}:{n['rpcPort']}: {e}")

    # The nominator stakes on each subnet validator's hotkey once it is registered.
    state["nominator"] = {"wallet": NOMINATOR, "coldkey": wallets[NOMINATOR]["coldkey"], "stakes": []}
    save_manifest(d, state)
    state["nominator"]["stakes"] = stake_nominator(tm, env, f"http://{host('full-0')}:{rpcp[4]}",
                                                   [(wallets[n]["hotkeyPublic"], u) for n, u, r, _ in processes if r == "subnet-validator"])
    state["state"] = "up"

    save_manifest(d, state)
    print(f"""
Tensormesh devnet is up (state and logs in {d}{', one network namespace per process' if netns else ''}).

  JSON-RPC       http://{host('validator-0')}:{rpcp[0]} … http://{host('full-0')}:{rpcp[4]}   (validators 0-3, full node)
  Prometheus     http://{host('validator-0')}:{prom[0]}/metrics … http://{host('full-0')}:{prom[4]}/metrics
  Bootnode       {nodes[0]['address']}
  Subnets        1 predict (intelligence market), 2 storage (storage market), tempo {a.tempo} blocks of {a.slot_ms} ms
  Nominator      wallet `nominator` staked {NOMINATOR_STAKE} TAO on each subnet validator ({len(state['nominator']['stakes'])} stakes); status shows its earnings

  Apps gateway   {gateway_url}   API key {api_key}   (10 requests per second)
                 curl -s -H "Authorization: Bearer {api_key}" {gateway_url}/v1/subnets/1/forecast \\
                   -d '{{"period":4,"horizon":2,"history":[50,58,50,42,50,58,50,42],"covariate":[0,0,0,0,0,0,0,0,0,0]}}'

  Bootstrap/devnet status          live table (add --json for machine output)
  .build/{ 'debug' if a.debug else 'release'}/tensormesh subnets metagraph --netuid 1 --rpc-url http://{host('full-0')}:{rpcp[4]}
  Bootstrap/devnet down            stop everything and remove {d}

Subnet processes register, publish axons, stake and start scoring within a minute;
incentive shows after the next epochs. Wallet password for the CLI: export {PASSWORD_ENV}={PASSWORD}
and TENSORMESH_WALLETS={os.path.join(d, 'wallets')}.
""")


NOMINATOR = "nominator"
NOMINATOR_STAKE = "100"


def stake_nominator(tm, env, url, validators):
    """The `nominator` wallet stakes on each subnet validator's hotkey once it is registered
    (through the CLI, with a price tolerance), so the devnet shows delegation paying out."""
    stakes = []
    for hotkey, netuid in validators:
        deadline = time.time() + 120
        port = int(url.rsplit(":", 1)[1])
        h = url.split("//")[1].rsplit(":", 1)[0]
        while time.time() < deadline:
            try:
                if hotkey in rpc(port, "subnet_getMetagraph", {"netuid": netuid}, host=h)["hotkeys"]:
                    break
            except Exception:
                pass
            time.sleep(1)
        else:
            log(f"nominator: {hotkey[:16]}… never registered on subnet {netuid}; not staking there")
            continue
        r = subprocess.run([tm, "stake", "add", "--wallet", NOMINATOR, "--netuid", str(netuid), "--hotkey-address", hotkey,
                            "--amount", NOMINATOR_STAKE, "--tolerance", "0.3", "--allow-partial", "--yes", "--json",
                            "--password-env", PASSWORD_ENV, "--rpc-url", url], env=dict(os.environ, **env), capture_output=True, text=True)
        if r.returncode != 0:
            log(f"nominator: staking on subnet {netuid} failed: {r.stderr.strip()[-400:]}")
            continue
        log(f"nominator: staked {NOMINATOR_STAKE} TAO on {hotkey[:16]}… (subnet {netuid})")
        stakes.append({"netuid": netuid, "hotkey": hotkey, "tao": NOMINATOR_STAKE})
    return stakes


def gather(m):
    nodes = []
    for n in m["nodes"]:
        x = dict(n)
        x["running"] = alive(n.get("pid"))
        h = n.get("host", "127.0.0.1")
        if n.get("rpcPort") and x["running"]:
            try:
                x["best"] = rpc(n["rpcPort"], "chain_getHead", host=h)["number"]
                x["finalized"] = rpc(n["rpcPort"], "chain_getFinalizedHead", host=h)["number"]
                x["peers"] = rpc(n["rpcPort"], "system_health", host=h)["peers"]
            except Exception as e:
                x["error"] = str(e)
        nodes.append(x)
    subnets = []
    rpc_nodes = [n for n in m["nodes"] if n.get("rpcPort") and alive(n.get("pid"))]
    if rpc_nodes:
        port, h = rpc_nodes[-1]["rpcPort"], rpc_nodes[-1].get("host", "127.0.0.1")
        try:
            for s in rpc(port, "subnet_list", host=h):
                if s["netuid"] == 0:
                    continue
                mg = rpc(port, "subnet_getMetagraph", {"netuid": s["netuid"]}, host=h)
                names = {n["hotkey"]: n["name"] for n in m["nodes"] if n.get("hotkey")}
                if m.get("gateway", {}).get("hotkey"):
                    names[m["gateway"]["hotkey"]] = "gateway"
                neurons = []
                for uid in mg["uids"]:
                    hk = mg["hotkeys"][uid]
                    neurons.append({"uid": uid, "name": names.get(hk, "owner" if uid == 0 else "?"), "hotkey": hk,
                                    "stake": mg["S"][uid], "incentive": mg["I"][uid], "dividends": mg["D"][uid],
                                    "emission": mg["E"][uid], "trust": mg["Tv"][uid], "permit": mg["validator_permit"][uid]})
                pool = rpc(port, "subnet_getPool", [s["netuid"]], host=h)
                subnets.append({"netuid": s["netuid"], "name": s["name"], "n": s["n"], "epochs": s["epochs"], "neurons": neurons,
                                "pool": {k: pool.get(k) for k in ["taoIn", "alphaIn", "alphaOut", "price", "priceFloat", "taoFlowEma", "symbol"]}})
        except Exception as e:
            subnets.append({"error": str(e)})
    return nodes, subnets


def gather_nominator(m):
    """The nominator's stakes: alpha, TAO value and what it earned, per subnet."""
    nom = m.get("nominator")
    rpc_nodes = [n for n in m["nodes"] if n.get("rpcPort") and alive(n.get("pid"))]
    if not nom or not rpc_nodes:
        return None
    port, h = rpc_nodes[-1]["rpcPort"], rpc_nodes[-1].get("host", "127.0.0.1")
    try:
        stakes = rpc(port, "subnet_getStake", {"coldkey": nom["coldkey"]}, host=h)
    except Exception as e:
        return {"wallet": nom["wallet"], "coldkey": nom["coldkey"], "error": str(e)}
    return {"wallet": nom["wallet"], "coldkey": nom["coldkey"],
            "stakes": [{k: x.get(k) for k in ["netuid", "hotkey", "alpha", "taoValue", "earned", "symbol"]} for x in stakes]}


def cmd_status(a):
    d = os.path.abspath(a.dir)
    m = load_manifest(d)
    if not m:
        if a.json:
            print(json.dumps({"nodes": [], "subnets": [], "running": False}))
            return
        die(f"no devnet under {d}; start one with `Bootstrap/devnet up`")
    if m.get("state") == "failed":
        die(f"the devnet under {d} failed to start (logs in {d}/logs); `Bootstrap/devnet down` removes it")
    if "chainSpec" not in m:
        die(f"the devnet under {d} is still starting")
    nodes, subnets = gather(m)
    nominator = gather_nominator(m)
    if a.json:
        keys = ["name", "nodeId", "address", "host", "rpcPort", "prometheusPort", "role", "pid", "netuid", "hotkey"]
        out = {"dir": d, "chainSpec": m["chainSpec"], "genesis": m["genesis"],
               "nodes": [dict({k: n.get(k) for k in keys}, running=n["running"], best=n.get("best"), finalized=n.get("finalized"),
                              peers=n.get("peers")) for n in nodes],
               "subnets": subnets, "nominator": nominator}
        g = m.get("gateway")
        out["gateway"] = {"url": g["url"], "apiKey": g["apiKey"], "running": alive(g.get("pid"))} if g else None
        print(json.dumps(out, indent=2))
        return
    print(f"{'NAME':26} {'ROLE':17} {'PID':>7} {'STATE':8} {'BEST':>6} {'FINAL':>6} {'PEERS':>5}  RPC")
    for n in nodes:
        state = "running" if n["running"] else "stopped"
        print(f"{n['name']:26} {n['role']:17} {n['pid']:>7} {state:8} {str(n.get('best', '')):>6} {str(n.get('finalized', '')):>6} "
              f"{str(n.get('peers', '')):>5}  {(n.get('host', '127.0.0.1') + ':' + str(n['rpcPort'])) if n.get('rpcPort') else ''}")
    g = m.get("gateway")
    if g:
        print(f"\ngateway {g['url']} ({'running' if alive(g.get('pid')) else 'stopped'}), API key {g['apiKey']}")
    for s in subnets:
        if "error" in s:
            print(f"\nsubnets: {s['error']}")
            continue
        print(f"\nsubnet {s['netuid']} ({s['name']}): {s['n']} neurons, {s['epochs']} epochs")
        p = s.get("pool") or {}
        print(f"  pool: price {p.get('price')} τ/{p.get('symbol')}, {(p.get('taoIn') or 0) / 1e9:.3f} τ and "
              f"{(p.get('alphaIn') or 0) / 1e9:.3f} {p.get('symbol')} in reserve, {(p.get('alphaOut') or 0) / 1e9:.3f} outstanding")
        print(f"  {'UID':>3} {'NAME':26} {'STAKE':>14} {'INCENTIVE':>9} {'DIVIDENDS':>9} {'EMISSION':>14}")
        for x in s["neurons"]:
            print(f"  {x['uid']:>3} {x['name']:26} {x['stake'] / 1e9:>10.3f} {s['pool'].get('symbol') or 'α'}   {x['incentive']:>9.4f} {x['dividends']:>9.4f} "
                  f"{x['emission'] / 1e9:>10.4f} {s['pool'].get('symbol') or 'α'}")
    print_nominator(nominator)


def print_nominator(nominator):
    if not nominator:
        return
    print(f"\nnominator wallet ({nominator['coldkey'][:16]}…):")
    if "error" in nominator:
        print(f"  {nominator['error']}")
        return
    for x in nominator["stakes"]:
        print(f"  subnet {x['netuid']}: {x['alpha'] / 1e9:.4f} {x['symbol']} on {x['hotkey'][:16]}… worth {x['taoValue'] / 1e9:.4f} τ, "
              f"earned {x['earned'] / 1e9:.6f} {x['symbol']}")


def cmd_down(a):
    d = os.path.abspath(a.dir)
    refuse_foreign_dir(d)
    m = load_manifest(d)
    # The manifest's processes and any pid file's (a devnet that failed half-way), each only
    # while it still runs in this folder (never a recycled pid).
    pids = [p for p in recorded_pids(d, m) if ours(p, d)]
    stop_pids(pids)
    if (m or {}).get("netns"):
        netns_delete(m["netns"])
    if bridge_exists():
        remove_stale_netns()
        if bridge_exists():
            log(f"bridge {BRIDGE} is still used by a running netns devnet in another folder; left alone")
    if os.path.exists(d):
        shutil.rmtree(d)
    log(f"stopped {len(pids)} processes and removed {d}")


def main():
    p = argparse.ArgumentParser(prog="Bootstrap/devnet", description="A private Tensormesh network on loopback.")
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build and start the network")
    up.add_argument("--dir", default=default_dir(), help="where all state lives (default .devnet)")
    up.add_argument("--debug", action="store_true", help="use a debug build (faster to build, slower to run)")
    up.add_argument("--base-port", type=int, default=30333, help="p2p port of validator 0 (N+1 ports)")
    up.add_argument("--rpc-port", type=int, default=9944)
    up.add_argument("--prometheus-port", type=int, default=9615)
    up.add_argument("--axon-port", type=int, default=8091)
    up.add_argument("--gateway-port", type=int, default=8080, help="the apps gateway's HTTP port on 127.0.0.1")
    up.add_argument("--slot-ms", type=int, default=1000)
    up.add_argument("--tempo", type=int, default=40)
    up.add_argument("--netns", action="store_true",
                    help="run every process in its own Linux network namespace with its own address (root; see --netns-prefix)")
    up.add_argument("--netns-prefix", default="10.77.0", help="the /24 for --netns (default 10.77.0)")
    st = sub.add_parser("status", help="show the network")
    st.add_argument("--dir", default=default_dir())
    st.add_argument("--json", action="store_true")
    dn = sub.add_parser("down", help="stop the network and remove its folder")
    dn.add_argument("--dir", default=default_dir())
    a = p.parse_args()
    {"up": cmd_up, "status": cmd_status, "down": cmd_down}[a.cmd](a)


if __name__ == "__main__":
    main()
