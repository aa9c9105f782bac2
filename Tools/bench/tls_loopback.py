#!/usr/bin/env python3
"""The TLS 1.3 anchor for `meshbench channel`: bulk throughput over loopback with Python's
ssl module (OpenSSL), client and server in separate processes, 1 MiB writes.
usage: tls_loopback.py MEGABYTES  -> prints GB/s"""
import multiprocessing, os, socket, ssl, subprocess, sys, tempfile, time

def make_cert(d):
    key, crt = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "1", "-subj", "/CN=localhost"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return key, crt

def serve(port_q, key, crt, total):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(crt, key)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0)); ls.listen(1)
    port_q.put(ls.getsockname()[1])
    conn, _ = ls.accept()
    s = ctx.wrap_socket(conn, server_side=True)
    got = 0
    while got < total:
        data = s.recv(1 << 20)
        if not data: break
        got += len(data)
    s.sendall(b"x")
    s.close()

def main():
    total = int(sys.argv[1]) << 20
    with tempfile.TemporaryDirectory() as d:
        key, crt = make_cert(d)
        q = multiprocessing.Queue()
        p = multiprocessing.Process(target=serve, args=(q, key, crt, total))
        p.start()
        port = q.get()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
        chunk = b"\x5a" * (1 << 20)
        start = time.perf_counter()
        sent = 0
        while sent < total:
            s.sendall(chunk); sent += len(chunk)
        s.recv(1)
        elapsed = time.perf_counter() - start
        s.close(); p.join()
        print(total / elapsed / 1e9)

if __name__ == "__main__":
    main()
