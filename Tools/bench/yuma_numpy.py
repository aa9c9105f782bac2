#!/usr/bin/env python3
"""The anchor for `meshbench epoch`: one Yuma 3 + liquid alpha epoch of the production
(sparse) path in vectorised numpy, float64, on the input meshbench writes. Prints the median
epoch time in ms.

The same steps as Sources/MeshIncentive/YumaEpoch.swift (yuma.md section 4): activity,
stake, top-k permits, active stake, weight masks (self-weight, weights older than the
target's registration, commit-reveal), row normalisation, stake-weighted kappa quantile per
column, clipping, trust, incentive, liquid-alpha bond EMA (cells absent from the new row
deleted, fresh registrations' bonds reset), dividends and emission shares.

Only uids holding a permit can have weight or bond rows, so the matrices are dense
validators x n (what a sensible vectorised implementation keeps); the per-column quantile
sorts the transposed (contiguous) matrix."""
import json, sys, time
import numpy as np


def epoch(n, block, tempo, cutoff, last_step, stake, permit, rows_idx, lu, reg, commit, commit_reveal, k_max,
          W0, B0, kappa=32767 / 65535, alow=45875 / 65535, ahigh=58982 / 65535, steep=1000, emission=1e9):
    # 1. activity, 2. stake, 3. top-k permits for the next epoch.
    inactive = lu + cutoff < block
    total = stake.sum()
    S = stake / total if total > 0 else stake.astype(float)
    order = np.argsort(S, kind="stable")
    new_permit = S > 0
    if n >= k_max:
        new_permit[order[: max(0, n - k_max)]] = False
    # 4. active stake over the permitted rows.
    A = np.where(inactive[rows_idx] | ~permit[rows_idx], 0.0, S[rows_idx])
    if A.sum() > 0:
        A = A / A.sum()
    # 5. masks, row normalisation.
    lu_r = lu[rows_idx][:, None]
    mask = lu_r <= reg[None, :]
    if commit_reveal:
        c = commit[rows_idx][:, None]
        mask |= c < reg[None, :]
    W = np.where(mask, 0.0, W0)
    W[np.arange(len(rows_idx)), rows_idx] = 0.0
    rs = W.sum(1, keepdims=True)
    W = np.divide(W, rs, out=np.zeros_like(W), where=rs > 0)
    # 6. stake-weighted kappa quantile per column, over rows with positive active stake.
    pos = A > 0
    sp = A[pos] / A[pos].sum()
    Wt = np.ascontiguousarray(W[pos].T)               # n x validators
    idx = np.argsort(Wt, axis=1)
    sw = np.take_along_axis(Wt, idx, 1)
    cs = np.cumsum(sp[idx], axis=1)
    first = (cs > sp.sum() - kappa).argmax(1)
    C = sw[np.arange(n), first]
    # 7.-9. clip, trust, incentive.
    Wc = np.minimum(W, C[None, :])
    trust = Wc.sum(1)
    I = A @ Wc
    if I.sum() > 0:
        I = I / I.sum()
    # 10.-11. bonds: liquid alpha EMA; fresh registrations' bonds reset; absent cells deleted.
    last_tempo = last_step + 1 if last_step else max(0, block - tempo)
    B = np.where((last_tempo <= reg)[None, :], 0.0, B0)
    Wb = Wc
    d = np.where(Wb >= B, np.clip(Wb - C[None, :], 0, 1), np.clip(B - Wb, 0, 1))
    sig = 1.0 / (1.0 + np.exp(np.clip((steep / -100.0) * (d - 0.5), -20, 20)))
    alpha = np.clip(alow + sig * (ahigh - alow), alow, ahigh)
    Bn = np.where(Wb > 0, np.minimum((1 - alpha) * B + alpha * Wb, 1.0), 0.0)
    csum = Bn.sum(0, keepdims=True)
    Bh = np.divide(Bn, csum, out=np.zeros_like(Bn), where=csum > 0)
    D = A * (Bh @ I)
    if D.sum() > 0:
        D = D / D.sum()
    # 12. emission shares.
    Dn = np.zeros(n)
    Dn[rows_idx] = D
    combined = I + Dn
    es = combined.sum()
    server = np.floor(I / es * emission) if es > 0 else np.zeros(n)
    validator = np.floor(Dn / es * emission) if es > 0 else np.zeros(n)
    bonds_u16 = np.floor(Bn * 65535)
    return C, trust, I, D, server, validator, bonds_u16, new_permit


def main():
    d = json.load(open(sys.argv[1]))
    n = d["n"]
    permit = np.array(d["validator_permit"], dtype=bool)
    rows_idx = np.nonzero(permit)[0]

    def dense(rows, scale):
        m = np.zeros((len(rows_idx), n))
        for r, i in enumerate(rows_idx):
            for j, v in rows[i]:
                m[r, j] = v / scale
        return m

    W = dense(d["weights"], 1.0)
    B = dense(d["bonds"], 65535.0)
    stake = np.array(d["stake"], dtype=float)
    commit = np.array([c if c is not None else 2**62 for c in d.get("commit_block", [None] * n)], dtype=np.int64)
    cutoff = d.get("activity_cutoff", 5000)
    args = (n, d["current_block"], d.get("tempo", 360), cutoff, d.get("last_mechanism_step_block", 0), stake, permit,
            rows_idx, np.array(d["last_update"], dtype=np.int64), np.array(d["block_at_registration"], dtype=np.int64),
            commit, d.get("commit_reveal_enabled", False), d.get("max_allowed_validators", 128), W, B)
    times = []
    for _ in range(d.get("runs", 5)):
        t0 = time.perf_counter()
        epoch(*args)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    print(times[len(times) // 2])


if __name__ == "__main__":
    main()
