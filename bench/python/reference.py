#!/usr/bin/env python3
"""Reference machine-health pipeline in Python: the agent's window features and classifier,
written the way a data team would with numpy and onnxruntime.

It reads the same input as `lab eval` (a folder with `index.csv` and raw little-endian f32
recordings in g), cuts each recording the way the agent does (int16 blocks of 512 samples as a
sensor sends them, windows of the largest power of two not above one second of samples, half
overlap), computes the agent's 23 model inputs per window (RMS, crest factor, kurtosis,
skewness, velocity RMS 10-1000 Hz, shaft orders, envelope spectrum with an automatically chosen
resonance band and peaks at the bearing frequencies in dB over the local background, band
energies) and runs the committed ONNX classifier on each window with onnxruntime, one window
at a time as a streaming gateway would.

The feature code follows agent/src/analyze/features/extractor.rs step by step (same windows, FFT
normalisations, band selection, peak search and background median), so its output can be
checked against `lab export-features --recordings` (see `--dump-inputs`).

Usage:
  reference.py --data DIR [--model MANIFEST] [--variant int8|float] [--dump-inputs CSV]
               [--no-quantize]
Prints one JSON line: windows, seconds of CPU, windows per CPU-second.
"""

import argparse
import csv
import json
import math
import os
import sys
import time

import numpy as np

GRAVITY = 9.80665
AUTO_BAND_TOP_RATIO = 0.45
AUTO_BAND_FLOOR_HZ = 1000.0
AUTO_BAND_LOW_EDGE_FAULT_MULTIPLE = 10.0
TAPER_RATIO = 0.05
DECIMATED_OVERSAMPLING = 4
MIN_DECIMATED_LEN = 64
MIN_BACKGROUND_BINS = 8
BACKGROUND_GUARD_BINS = 2
FIRST_ENVELOPE_BIN = 2
MAGNITUDE_FLOOR = 1e-15
LOG_FLOOR = 1e-6
BLOCK = 512
# WindowConfig::default(): the agent's window (and `lab eval`'s), whatever the sample rate.
WINDOW_LEN = 8192

# FeatureConfig::default()
VELOCITY_BAND_HZ = (10.0, 1000.0)
SPEED_TOLERANCE = 0.02
BACKGROUND_HALF_WIDTH_HZ = 20.0
BAND_EDGES_HZ = (10.0, 1000.0, 3000.0, 6000.0)


def candidate_bands(fs):
    top = AUTO_BAND_TOP_RATIO * fs
    bands = []
    for width, step_oct in ((1.0, 0.5), (1.0 / 3.0, 1.0 / 6.0)):
        step = 0
        while True:
            high = top / 2.0 ** (step * step_oct)
            low = high / 2.0**width
            if low < AUTO_BAND_FLOOR_HZ:
                break
            bands.append((low, high))
            step += 1
    return bands


def search_region(length, df, f_hz, tol, first_bin):
    half = max(tol * f_hz, df)
    first = max(int(max(math.ceil((f_hz - half) / df), 0.0)), first_bin)
    last_f = math.floor((f_hz + half) / df)
    if last_f < 0:
        return None
    last = min(int(last_f), length - 1)
    return (first, last) if first <= last else None


def argmax(values, first, last):
    seg = values[first : last + 1]
    # Rust's max_by keeps the last of equal maxima.
    return first + len(seg) - 1 - int(np.argmax(seg[::-1]))


def hann_interpolation(mag, k):
    peak = mag[k]
    if peak <= 0.0:
        return 0.0, 1.0
    left = mag[k - 1] if k > 0 else 0.0
    right = mag[k + 1] if k + 1 < len(mag) else 0.0
    neighbour, sign = (right, 1.0) if right >= left else (left, -1.0)
    r = neighbour / peak
    delta = min(max((2.0 * r - 1.0) / (1.0 + r), 0.0), 0.5)
    gain = 1.0 if delta < 1e-9 else math.pi * delta * (1 - delta * delta) / math.sin(math.pi * delta)
    return sign * delta, gain


class Extractor:
    """Plans and window tables for one window length and sample rate."""

    def __init__(self, n, fs):
        self.n = n
        self.fs = fs
        self.df = fs / n
        i = np.arange(n)
        self.hann = 0.5 - 0.5 * np.cos(2 * np.pi * i / n)
        self.hann_sum = self.hann.sum()
        self.hann_power = (self.hann**2).sum()
        taper_len = max(int(n * TAPER_RATIO), 1)
        from_edge = np.minimum(i, n - 1 - i)
        self.taper = np.where(
            from_edge >= taper_len, 1.0, 0.5 - 0.5 * np.cos(np.pi * (from_edge + 0.5) / taper_len)
        )
        self.candidates = candidate_bands(fs)
        self.short_lens = []
        m = MIN_DECIMATED_LEN
        while m < n:
            self.short_lens.append(m)
            m *= 2
        one_sided = np.full(n // 2 + 1, 2.0)
        one_sided[0] = one_sided[-1] = 1.0
        self.power_scale = one_sided / (n * self.hann_power)

    def bins_in(self, low, high):
        first = int(max(math.ceil(low / self.df), 0.0))
        size = self.n // 2 + 1
        end = min(int(math.ceil(high / self.df)), size) if math.isfinite(high) else size
        return min(first, end), end

    def extract(self, x, shaft_hz, orders):
        x = x.astype(np.float64)
        mean = x.mean()
        d = x - mean
        d2 = d * d
        m2, m3, m4 = d2.mean(), (d2 * d).mean(), (d2 * d2).mean()
        peak = np.abs(d).max()
        rms = math.sqrt(m2)
        varies = m2 > 0
        crest = peak / rms if varies else 0.0
        kurt = m4 / (m2 * m2) if varies else 0.0
        skew = m3 / m2**1.5 if varies else 0.0

        mag = np.abs(np.fft.rfft(d * self.hann))
        power = mag * mag * self.power_scale
        lo, hi = self.bins_in(VELOCITY_BAND_HZ[0], VELOCITY_BAND_HZ[1] + self.df * 1e-9)
        k = np.arange(max(lo, 1), hi)
        to_mm_s = GRAVITY * 1000.0 / (2 * np.pi * k * self.df)
        velocity = math.sqrt(float((power[k] * to_mm_s * to_mm_s).sum()))
        band_rms = []
        for b, low in enumerate(BAND_EDGES_HZ):
            high = BAND_EDGES_HZ[b + 1] if b + 1 < len(BAND_EDGES_HZ) else math.inf
            a, e = self.bins_in(low, high)
            band_rms.append(math.sqrt(float(power[a:e].sum())))

        def tone(f_hz):
            region = search_region(len(mag), self.df, f_hz, SPEED_TOLERANCE, 1)
            if region is None:
                return 0.0
            kk = argmax(mag, *region)
            _, gain = hann_interpolation(mag, kk)
            return 2.0 * mag[kk] / self.hann_sum * gain

        orders_g = [tone(m * shaft_hz) for m in (0.5, 1.0, 2.0, 3.0)]
        env = self.envelope(d, shaft_hz, orders)

        log10 = lambda v: math.log10(max(v, LOG_FLOOR))  # noqa: E731
        sine = max(rms * math.sqrt(2.0), LOG_FLOOR)
        total = sum(r * r for r in band_rms)
        inputs = [log10(rms), crest, log10(kurt), skew, log10(velocity)]
        inputs += [20.0 * math.log10(max(a, LOG_FLOOR) / sine) for a in orders_g]
        inputs += env
        inputs += [r * r / total if total > 0 else 0.0 for r in band_rms]
        inputs.append(0.0)  # temperature rise: recordings carry no temperature
        return np.asarray(inputs, dtype=np.float32)

    def band_kurtosis(self, spectrum, band):
        first = max(math.ceil(band[0] / self.df), 1)
        last = min(math.floor(band[1] / self.df), self.n // 2 - 1)
        if first > last:
            return 0.0
        bins = last - first + 1
        wanted = max(bins * DECIMATED_OVERSAMPLING, MIN_DECIMATED_LEN)
        length = next((m for m in self.short_lens if m >= wanted), self.n)
        buf = np.zeros(length, dtype=np.complex128)
        buf[:bins] = spectrum[first : last + 1]
        a = np.fft.ifft(buf)
        skip = math.ceil(length * TAPER_RATIO)
        p = np.abs(a[skip : length - skip]) ** 2
        s2 = p.sum()
        if s2 <= 0:
            return 0.0
        return len(p) * (p * p).sum() / (s2 * s2) - 2.0

    def select_band(self, spectrum, f_max):
        top = AUTO_BAND_TOP_RATIO * self.fs
        floor = max(AUTO_BAND_FLOOR_HZ, AUTO_BAND_LOW_EDGE_FAULT_MULTIPLE * f_max)
        min_width = 4.0 * f_max * (1.0 + SPEED_TOLERANCE)
        best = None
        lowest = math.inf
        for band in self.candidates:
            if not (band[0] >= floor and band[1] - band[0] >= min_width):
                continue
            lowest = min(lowest, band[0])
            k = self.band_kurtosis(spectrum, band)
            if best is None or k > best[1]:
                best = (band, k)
        wide = (lowest if math.isfinite(lowest) else min(floor, top / 2.0), top)
        kw = self.band_kurtosis(spectrum, wide)
        if best is not None and best[1] >= kw:
            return best
        return wide, kw

    def envelope(self, d, shaft_hz, orders):
        spectrum = np.fft.rfft(d * self.taper)
        bpfo, bpfi, bsf, ftf = orders
        band, band_kurt = self.select_band(spectrum, shaft_hz * max(orders))
        first = max(math.ceil(band[0] / self.df), 1)
        last = min(math.floor(band[1] / self.df), self.n // 2 - 1)
        analytic = np.zeros(self.n, dtype=np.complex128)
        if first <= last:
            analytic[first : last + 1] = 2.0 * spectrum[first : last + 1]
        e = np.abs(np.fft.ifft(analytic))
        mag = np.abs(np.fft.rfft((e - e.mean()) * self.hann)) * (2.0 / self.hann_sum)
        width = max(math.ceil(BACKGROUND_HALF_WIDTH_HZ / self.df), MIN_BACKGROUND_BINS)
        size = len(mag)

        def peak(f_hz):
            region = search_region(size, self.df, f_hz, SPEED_TOLERANCE, FIRST_ENVELOPE_BIN)
            if region is None:
                return 0.0
            first_bin, last_bin = region
            kk = argmax(mag, first_bin, last_bin)
            below_end = max(first_bin - BACKGROUND_GUARD_BINS, 0)
            below_start = max(below_end - width, FIRST_ENVELOPE_BIN)
            above_start = last_bin + 1 + BACKGROUND_GUARD_BINS
            background = np.concatenate(
                (
                    mag[below_start:below_end] if below_start < below_end else mag[0:0],
                    mag[min(above_start, size) : min(above_start + width, size)],
                )
            )
            if len(background) == 0:
                return 0.0
            median = np.partition(background, len(background) // 2)[len(background) // 2]
            return 20.0 * math.log10((mag[kk] + MAGNITUDE_FLOOR) / (median + MAGNITUDE_FLOOR))

        s = shaft_hz
        return [
            peak(bpfo * s),
            peak(2 * bpfo * s),
            peak(bpfi * s),
            peak(2 * bpfi * s),
            peak(bsf * s),
            peak(2 * bsf * s),
            peak(ftf * s),
            peak(2 * ftf * s),
            band_kurt,
        ]


def read_index(data):
    with open(os.path.join(data, "index.csv"), newline="") as f:
        return list(csv.DictReader(f))


def sensor_samples(raw, quantize):
    """The samples as the agent sees them: int16 blocks of BLOCK samples, full scale just
    above the recording's peak (as `lab eval` sends them), back in g as f32."""
    if not quantize:
        return raw
    used = len(raw) // BLOCK * BLOCK
    raw = raw[:used]
    peak = np.float32(np.abs(raw).max()) if used else np.float32(0)
    scale = np.float32(max(peak * np.float32(1.05), np.float32(1e-6)) / np.float32(32767))
    q = np.round(raw / scale).clip(-32768, 32767).astype(np.int16)
    return q.astype(np.float32) * scale


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", help="manifest.json of the ONNX classifier (default: none)")
    ap.add_argument("--variant", default="int8", choices=("int8", "float"))
    ap.add_argument("--dump-inputs", help="write the model inputs per window to this CSV")
    ap.add_argument("--no-quantize", action="store_true", help="use the f32 samples as they are")
    ap.add_argument("--window-len", type=int, help=f"window length (default: the agent's, {WINDOW_LEN})")
    args = ap.parse_args()

    session = None
    if args.model:
        import onnxruntime as ort

        with open(args.model) as f:
            manifest = json.load(f)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        path = os.path.join(os.path.dirname(args.model), manifest["models"][args.variant]["file"])
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name

    start_cpu = time.process_time()
    extractors = {}
    windows = 0
    dump = []
    classes = {}
    for row in read_index(args.data):
        fs = float(row["sample_rate_hz"])
        raw = np.fromfile(os.path.join(args.data, row["file"]), dtype="<f4")
        x = sensor_samples(raw, not args.no_quantize)
        n = args.window_len or WINDOW_LEN
        ex = extractors.get((n, fs))
        if ex is None:
            ex = extractors[(n, fs)] = Extractor(n, fs)
        shaft = float(row["rpm"]) / 60.0
        orders = tuple(float(row[k]) for k in ("bpfo_order", "bpfi_order", "bsf_order", "ftf_order"))
        hop = min(max(int(round(n * (1.0 - 0.5))), 1), n)
        start = 0
        while start + n <= len(x):
            inputs = ex.extract(x[start : start + n], shaft, orders)
            if session is not None:
                probs = session.run(None, {input_name: inputs.reshape(1, -1)})[0][0]
                best = int(np.argmax(probs))
                classes[best] = classes.get(best, 0) + 1
            if args.dump_inputs:
                dump.append((row["file"], start / fs, inputs))
            windows += 1
            start += hop
    cpu = time.process_time() - start_cpu

    if args.dump_inputs:
        with open(args.dump_inputs, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "start_s"] + [f"x{i}" for i in range(23)])
            for name, t, inputs in dump:
                w.writerow([name, repr(t)] + [repr(float(v)) for v in inputs])
    print(
        json.dumps(
            {
                "windows": windows,
                "cpu_s": round(cpu, 3),
                "windows_per_cpu_s": round(windows / cpu, 1) if cpu > 0 else None,
                "class_counts": {str(k): v for k, v in sorted(classes.items())},
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
