//! Hann-window spectral interpolation, shared by the extractor and the speed search.

use std::f64::consts::PI;

/// Offset of a Hann-windowed tone from bin `k`, in bins (−0.5..=0.5), and the factor that
/// undoes the scalloping loss, from the ratio of the larger neighbour to the peak:
/// `δ = (2r − 1) / (1 + r)`, gain `πδ(1 − δ²) / sin(πδ)`.
pub(super) fn hann_interpolation(magnitude: &[f64], k: usize) -> (f64, f64) {
    let peak = magnitude[k];
    if peak <= 0.0 {
        return (0.0, 1.0);
    }
    let left = if k > 0 { magnitude[k - 1] } else { 0.0 };
    let right = magnitude.get(k + 1).copied().unwrap_or(0.0);
    let (neighbour, sign) = if right >= left {
        (right, 1.0)
    } else {
        (left, -1.0)
    };
    let r = neighbour / peak;
    let delta = ((2.0 * r - 1.0) / (1.0 + r)).clamp(0.0, 0.5);
    let gain = if delta < 1e-9 {
        1.0
    } else {
        PI * delta * (1.0 - delta * delta) / (PI * delta).sin()
    };
    (sign * delta, gain)
}
