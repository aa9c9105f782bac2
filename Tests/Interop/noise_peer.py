#!/usr/bin/env python3
"""An independent Tensormesh secure-channel client for interop tests.

Uses the `noiseprotocol` package (pure Python over `cryptography`) for
Noise_XX_25519_ChaChaPoly_SHA256 and implements the rest of CONTRACT.md's secure
channel from the documentation only: prologue "tensormesh/1", 2-byte big-endian framing,
the 96-byte identity payload, the hello, and a stream carrying one message that the
server echoes back.

usage: noise_peer.py HOST PORT GENESIS_HEX [EXPECTED_NODE_ID_HEX]
prints "ok <server node id>" and exits 0 on success."""
import os, socket, struct, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives import serialization
from noise.connection import NoiseConnection, Keypair

RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw
PREFIX = b"tensormesh-static-key:"

def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)

def read_varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]; i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7

def frame(kind, stream, body):
    return bytes([kind]) + varint(stream) + varint(len(body)) + body

def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise SystemExit("connection closed by server")
        data += chunk
    return data

def recv_msg(sock):
    (n,) = struct.unpack(">H", recv_exact(sock, 2))
    return recv_exact(sock, n)

def send_msg(sock, data):
    sock.sendall(struct.pack(">H", len(data)) + data)

def main():
    host, port, genesis = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
    expected = sys.argv[4] if len(sys.argv) > 4 else None
    identity = Ed25519PrivateKey.generate()
    static = X25519PrivateKey.generate()
    static_pub = static.public_key().public_bytes(*RAW)
    payload = identity.public_key().public_bytes(*RAW) + identity.sign(PREFIX + static_pub)

    noise = NoiseConnection.from_name(b"Noise_XX_25519_ChaChaPoly_SHA256")
    noise.set_as_initiator()
    noise.set_keypair_from_private_bytes(Keypair.STATIC, static.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()))
    noise.set_prologue(b"tensormesh/1")
    noise.start_handshake()

    sock = socket.create_connection((host, port), timeout=10)
    send_msg(sock, noise.write_message(b""))
    server_payload = bytes(noise.read_message(recv_msg(sock)))
    rs = bytes(noise.noise_protocol.handshake_state.rs.public_bytes)
    server_pk = server_payload[:32]
    Ed25519PublicKey.from_public_bytes(server_pk).verify(server_payload[32:96], PREFIX + rs)
    if expected and server_pk.hex() != expected:
        raise SystemExit("server node id mismatch")
    send_msg(sock, noise.write_message(payload))
    assert noise.handshake_finished

    zero_ref = struct.pack(">Q", 0) + bytes(32)
    hello = struct.pack(">I", 1) + genesis + zero_ref + zero_ref + bytes([2]) + struct.pack(">H", 0) + varint(9) + b"py-interop"[:9]
    message = os.urandom(3000)
    data = bytes([3]) + varint(len(message)) + message  # FIRST|LAST, wire length, chunk
    plain = frame(1, 0, hello) + frame(2, 1, b"/echo/1") + frame(3, 1, data)
    send_msg(sock, noise.encrypt(plain))

    got_hello = False
    while True:
        plain = bytes(noise.decrypt(recv_msg(sock)))
        i = 0
        while i < len(plain):
            kind = plain[i]; i += 1
            stream, i = read_varint(plain, i)
            length, i = read_varint(plain, i)
            body = plain[i:i + length]; i += length
            if kind == 1:
                if body[4:36] != genesis:
                    raise SystemExit("server hello has another genesis")
                got_hello = True
            elif kind == 3 and stream == 1:
                flags = body[0]
                wire, j = read_varint(body, 1)
                if flags & 4:
                    raise SystemExit("unexpected compression for a 3000-byte random message")
                if body[j:] != message or not got_hello:
                    raise SystemExit("echo mismatch")
                close = frame(6, 0, struct.pack(">H", 0) + varint(4) + b"done")
                send_msg(sock, noise.encrypt(close))
                print("ok", server_pk.hex())
                return
            elif kind == 6:
                raise SystemExit("server closed the channel: %r" % body)

if __name__ == "__main__":
    main()
