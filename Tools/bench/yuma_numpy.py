#!/usr/bin/env python3
"""The anchor for `meshbench epoch`: one Yuma 3 + liquid alpha epoch in vectorised numpy
(float64, dense n x n), on the input meshbench writes. Prints the median epoch time in ms.

The same steps as Sources/MeshIncentive/YumaEpoch.swift (yuma.md section 4), in float64."""
import json, sys, time
import numpy as np

def epoch(n, block, stake, rows_idx, lu, reg, W0, B0, kappa=32767/65535, bma=900000,
          alow=45875/65535, ahigh=58982/65535, steep=1000, tempo=360, cutoff=5000):
    # Rows are the permitted validators rows_idx; columns are all n uids.
    inactive = lu[rows_idx] + cutoff < block
    S = stake / stake.sum() if stake.sum() > 0 else stake
    A = np.where(inactive, 0.0, S[rows_idx])
    if A.sum() > 0: A = A / A.sum()
    W = W0.copy()
    W[np.arange(len(rows_idx)), rows_idx] = 0
    W[lu[rows_idx][:, None] <= reg[None, :]] = 0
    rs = W.sum(1, keepdims=True)
    W = np.divide(W, rs, out=np.zeros_like(W), where=rs > 0)
    # Stake-weighted kappa quantile per column.
    pos = A > 0
    Wp = W[pos]; sp = A[pos] / A[pos].sum()
    order = np.argsort(Wp, axis=0, kind="stable")
    sw = np.take_along_axis(Wp, order, 0)
    cs = np.cumsum(sp[order], axis=0)
    minority = sp.sum() - kappa
    idx = (cs > minority).argmax(0)
    C = sw[idx, np.arange(n)]
    Wc = np.minimum(W, C[None, :])
    I = (A[:, None] * Wc).sum(0)
    if I.sum() > 0: I = I / I.sum()
    Wb = Wc
    recent = (block - tempo) <= reg
    B = B0.copy(); B[:, recent] = 0
    d = np.where(Wb >= B, np.clip(Wb - C[None, :], 0, 1), np.clip(B - Wb, 0, 1))
    sig = 1.0 / (1.0 + np.exp(np.clip(-(steep / 100.0) * (d - 0.5), -20, 20)))
    alpha = np.clip(alow + sig * (ahigh - alow), alow, ahigh)
    Bn = np.minimum((1 - alpha) * B + np.maximum(alpha * Wb, 0), 1.0)
    csum = Bn.sum(0, keepdims=True)
    Bh = np.divide(Bn, csum, out=np.zeros_like(Bn), where=csum > 0)
    D = A * (Bh * I[None, :]).sum(1)
    if D.sum() > 0: D = D / D.sum()
    return C, I, D, Bn

def main():
    d = json.load(open(sys.argv[1]))
    n = d["n"]
    # Only uids with a permit can have weight or bond rows, so the dense matrices are
    # validators x n (what a sensible vectorised implementation keeps).
    permit = np.array(d["validator_permit"])
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
    args = (n, d["current_block"], stake, rows_idx, np.array(d["last_update"]),
            np.array(d["block_at_registration"]), W, B)
    times = []
    for _ in range(d.get("runs", 5)):
        t0 = time.perf_counter()
        epoch(*args)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    print(times[len(times) // 2])

if __name__ == "__main__":
    main()
