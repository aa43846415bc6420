#!/usr/bin/env python3
"""Compares two `lab replay-features` outputs (JSON lines): the native build's and a
cross-built one's under qemu.

Same input, same code: the windows (asset, sensor, axis, start/end time, sample rate) and every
non-numeric feature (severity zone) must be identical. Numeric features may differ only by
floating-point rounding: the FFT library picks different SIMD kernels per architecture (AVX/SSE
on x86-64, NEON on aarch64, scalar on armv7), which changes the order of additions, and libm's
transcendental functions may differ in the last bit per platform. Rust never fuses or reorders
float operations itself. The tolerance is |a - b| <= 1e-9 * scale + 1e-12 with scale = max(|a|,
|b|, the largest magnitude of that feature in the file): a relative error of 1e-9 is ~10^7 times
the f64 epsilon, room for rounding through 8192-point FFTs, while any real difference (a wrong
window, a different algorithm, a float-to-int cut moved) shows up far above it.
"""
import json
import sys

RTOL = 1e-9
ATOL = 1e-12


def flatten(prefix, value, out):
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else k, v, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            flatten(f"{prefix}[{i}]", v, out)
    else:
        out[prefix] = value


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    native, cross = load(sys.argv[1]), load(sys.argv[2])
    problems = []
    if len(native) != len(cross):
        problems.append(f"window count: native {len(native)}, cross {len(cross)}")
    if not native:
        problems.append("no windows at all: the replay produced nothing to compare")
    rows = []
    for a, b in zip(native, cross):
        fa, fb = {}, {}
        flatten("", a, fa)
        flatten("", b, fb)
        if fa.keys() != fb.keys():
            problems.append(f"fields differ: {sorted(fa.keys() ^ fb.keys())}")
            continue
        rows.append((fa, fb))
    scale = {}
    for fa, _ in rows:
        for k, v in fa.items():
            if isinstance(v, float) or isinstance(v, int) and not isinstance(v, bool):
                scale[k] = max(scale.get(k, 0.0), abs(float(v)))
    max_abs, max_rel, worst, exact, compared = 0.0, 0.0, "", 0, 0
    for i, (fa, fb) in enumerate(rows):
        for k, va in fa.items():
            vb = fb[k]
            numeric = isinstance(va, (int, float)) and not isinstance(va, bool)
            if not k.startswith("features.") or not numeric or va is None or vb is None:
                if va != vb:
                    problems.append(f"window {i} {k}: native {va!r}, cross {vb!r}")
                continue
            if not isinstance(vb, (int, float)):
                problems.append(f"window {i} {k}: native {va!r}, cross {vb!r}")
                continue
            compared += 1
            d = abs(float(va) - float(vb))
            exact += d == 0.0
            s = max(abs(float(va)), abs(float(vb)), scale.get(k, 0.0))
            rel = d / s if s > 0 else 0.0
            if d > max_abs:
                max_abs = d
            if rel > max_rel:
                max_rel, worst = rel, f"window {i} {k}: {va!r} vs {vb!r}"
            if d > RTOL * s + ATOL:
                problems.append(f"window {i} {k}: native {va!r}, cross {vb!r} (rel {rel:.2e})")
    print(
        f"{len(native)} windows, {compared} numeric features compared: {exact} bit-identical, "
        f"max abs diff {max_abs:.3e}, max scaled rel diff {max_rel:.3e} (tolerance {RTOL:g})"
    )
    if worst:
        print(f"largest difference: {worst}")
    if problems:
        for p in problems[:20]:
            print("FAIL", p, file=sys.stderr)
        print(f"FAIL: {len(problems)} differences between native and cross features", file=sys.stderr)
        return 1
    print("ok   cross-built features equal the native ones within tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
