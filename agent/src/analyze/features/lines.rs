//! Bearing line families in the envelope spectrum: the evidence a vibration analyst reads.
//!
//! A defect does not make one line but a family: an outer-race defect (fixed in the load zone)
//! repeats at BPFO and its harmonics; an inner-race defect turns with the shaft, so its lines at
//! BPFI and harmonics carry sidebands at ± the shaft rate; a spalled rolling element strikes
//! the races twice per spin (2 × BSF, with BSF and its harmonics) and travels with the cage,
//! so its lines carry sidebands at ± FTF. [`line_families`] measures every member line of the
//! three families (dB over the local background, as every envelope peak) and scores each
//! family by how far its lines stand above chance.
//!
//! A line is only credited to a family when it is its own: each member is searched within ±
//! the speed tolerance (at least one bin), and the peak found there counts only if its
//! (interpolated) frequency is nearer to the member than to every other expected line: the
//! members of the other families, the shaft harmonics (present in the envelope of many
//! healthy machines) and the cage lines. A member within half a bin of another expected line
//! is not measured at all (whatever stands there is evidence for both). Longer windows (finer
//! bins) tell more members apart.

use serde::{Deserialize, Serialize};

use super::FaultOrders;

/// Line height, dB over the local background, from which a member counts as a line: above
/// what a single window reads by chance without one (up to about 10 dB, module docs).
pub const LINE_DB: f64 = 10.0;
/// Heights above this add to a family's score: the median background reads about 3 dB, the
/// chance maximum of a search region about 6 dB.
pub const CHANCE_DB: f64 = 6.0;
/// Weight of a sideband's excess in a family's score (harmonics weigh 1): sidebands confirm a
/// family, they do not make one.
pub const SIDEBAND_WEIGHT: f64 = 0.5;
/// Members closer than this many bins to another expected line are not measured: whatever
/// is found there is evidence for both.
const MIN_SEPARATION_BINS: f64 = 0.5;

/// How strongly one family of lines stands in one window's envelope spectrum.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilyEvidence {
    /// Σ over resolved members of `max(0, height − CHANCE_DB)`, sidebands weighted by
    /// [`SIDEBAND_WEIGHT`], dB. 0: nothing above chance.
    pub score_db: f64,
    /// Fundamental and harmonics at or above [`LINE_DB`].
    pub harmonics: u8,
    /// Sidebands at or above [`LINE_DB`].
    pub sidebands: u8,
    /// Members resolved (measured) in this window; the rest sat on another expected line.
    pub resolved: u8,
    /// The family's highest member, dB over background.
    pub peak_db: f64,
}

/// The three bearing line families of one window.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineFamilies {
    /// BPFO and harmonics (outer race).
    pub outer: FamilyEvidence,
    /// BPFI and harmonics, with shaft-rate sidebands (inner race).
    pub inner: FamilyEvidence,
    /// BSF, 2 × BSF and harmonics, with cage-rate sidebands around 2 × BSF (rolling element).
    pub ball: FamilyEvidence,
}

impl LineFamilies {
    /// `(part, evidence)` for `outer`, `inner`, `ball`, in that order.
    pub fn parts(&self) -> [(&'static str, FamilyEvidence); 3] {
        [
            ("outer", self.outer),
            ("inner", self.inner),
            ("ball", self.ball),
        ]
    }

    /// [`Self::parts`] sorted by score, highest first (ties keep the order of `parts`).
    pub fn ranked(&self) -> [(&'static str, FamilyEvidence); 3] {
        let mut parts = self.parts();
        parts.sort_by(|a, b| b.1.score_db.total_cmp(&a.1.score_db));
        parts
    }
}

/// One member line of a family, in shaft orders.
#[derive(Debug, Clone, Copy)]
struct Member {
    family: usize,
    order: f64,
    sideband: bool,
}

/// Members per family at most (inner: 3 harmonics and 4 sidebands).
const MAX_MEMBERS: usize = 7 + 4 + 6;

/// Every member of the three families for these orders: `(members, count)`.
fn members(o: &FaultOrders) -> ([Member; MAX_MEMBERS], usize) {
    let h = |family, order| Member {
        family,
        order,
        sideband: false,
    };
    let s = |family, order| Member {
        family,
        order,
        sideband: true,
    };
    let list = [
        // Outer race: BPFO × 1..4.
        h(0, o.bpfo),
        h(0, 2.0 * o.bpfo),
        h(0, 3.0 * o.bpfo),
        h(0, 4.0 * o.bpfo),
        // Inner race: BPFI × 1..3, sidebands ± 1 shaft order around the first two.
        h(1, o.bpfi),
        h(1, 2.0 * o.bpfi),
        h(1, 3.0 * o.bpfi),
        s(1, o.bpfi - 1.0),
        s(1, o.bpfi + 1.0),
        s(1, 2.0 * o.bpfi - 1.0),
        s(1, 2.0 * o.bpfi + 1.0),
        // Rolling element: BSF × 1..4 (2 × BSF is the defect's own rate), ± FTF around 2 × BSF.
        h(2, o.bsf),
        h(2, 2.0 * o.bsf),
        h(2, 3.0 * o.bsf),
        h(2, 4.0 * o.bsf),
        s(2, 2.0 * o.bsf - o.ftf),
        s(2, 2.0 * o.bsf + o.ftf),
    ];
    let mut out = [list[0]; MAX_MEMBERS];
    out[..list.len()].copy_from_slice(&list);
    (out, list.len())
}

/// Whether a line found at `found` (orders) belongs to member `own` of `all`: it is nearer to
/// the member's frequency than to every other expected line (other members, shaft harmonics
/// 1, 2, 3, …, the cage lines FTF and 2 × FTF). `None` when another expected line lies within
/// `min_gap` of the member's own frequency: no window can tell the two apart.
fn attributed(found: f64, own: usize, all: &[Member], ftf: f64, min_gap: f64) -> Option<bool> {
    let m = all[own].order;
    let d_own = (found - m).abs();
    let shaft = [(m.round().max(1.0)), found.round().max(1.0)];
    let others = all
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != own)
        .map(|(_, o)| o.order)
        .chain(shaft)
        .chain([ftf, 2.0 * ftf]);
    let mut nearest = true;
    for other in others {
        if (other - m).abs() < min_gap {
            return None;
        }
        if (found - other).abs() < d_own {
            nearest = false;
        }
    }
    Some(nearest)
}

/// Scores the three families. `peak(f_hz, half_width_hz)` measures the largest
/// envelope-spectrum line within `half_width_hz` of `f_hz`: `(dB over background, frequency
/// found in Hz)`, `None` above the spectrum; `df` is the bin width, Hz; `tolerance` the
/// relative search half-width (at least one bin).
pub(super) fn line_families(
    shaft_hz: f64,
    orders: &FaultOrders,
    df: f64,
    tolerance: f64,
    mut peak: impl FnMut(f64, f64) -> Option<(f64, f64)>,
) -> LineFamilies {
    let (all, count) = members(orders);
    let all = &all[..count];
    let min_gap = MIN_SEPARATION_BINS * df / shaft_hz;
    let mut families = [FamilyEvidence::default(); 3];
    for (i, m) in all.iter().enumerate() {
        if m.order <= 0.0 {
            continue;
        }
        let f_hz = m.order * shaft_hz;
        let Some((db, found_hz)) = peak(f_hz, (tolerance * f_hz).max(df)) else {
            continue;
        };
        let Some(own) = attributed(found_hz / shaft_hz, i, all, orders.ftf, min_gap) else {
            continue;
        };
        let e = &mut families[m.family];
        e.resolved += 1;
        if !own {
            continue;
        }
        e.peak_db = e.peak_db.max(db);
        let weight = if m.sideband { SIDEBAND_WEIGHT } else { 1.0 };
        e.score_db += weight * (db - CHANCE_DB).max(0.0);
        if db >= LINE_DB {
            if m.sideband {
                e.sidebands += 1;
            } else {
                e.harmonics += 1;
            }
        }
    }
    LineFamilies {
        outer: families[0],
        inner: families[1],
        ball: families[2],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CWRU: FaultOrders = FaultOrders {
        bpfo: 3.053,
        bpfi: 4.9469,
        bsf: 3.9874,
        ftf: 0.3817,
    };

    /// A fake spectrum: lines at the given orders (height in dB), chance elsewhere (4 dB).
    fn spectrum(lines: &[(f64, f64)], shaft_hz: f64) -> impl FnMut(f64, f64) -> Option<(f64, f64)> {
        let lines: Vec<(f64, f64)> = lines.iter().map(|&(o, db)| (o * shaft_hz, db)).collect();
        move |f, hw| {
            Some(
                lines
                    .iter()
                    .filter(|(lf, _)| (lf - f).abs() <= hw)
                    .map(|&(lf, db)| (db, lf))
                    .fold((4.0, f), |a, b| if b.0 > a.0 { b } else { a }),
            )
        }
    }

    #[test]
    fn an_outer_race_family_scores_outer_only() {
        let shaft = 29.95;
        let f = line_families(
            shaft,
            &CWRU,
            1.0,
            0.02,
            spectrum(&[(3.053, 25.0), (6.106, 18.0), (9.159, 12.0)], shaft),
        );
        assert_eq!(f.outer.harmonics, 3);
        assert!(
            (f.outer.score_db - (19.0 + 12.0 + 6.0)).abs() < 1e-9,
            "{f:?}"
        );
        assert_eq!(f.inner.score_db, 0.0);
        assert_eq!(f.ball.score_db, 0.0);
        assert_eq!(f.ranked()[0].0, "outer");
    }

    #[test]
    fn inner_race_sidebands_add_half_weight() {
        let shaft = 29.95;
        let f = line_families(
            shaft,
            &CWRU,
            1.0,
            0.02,
            spectrum(&[(4.9469, 20.0), (8.8938, 14.0), (10.8938, 14.0)], shaft),
        );
        assert_eq!((f.inner.harmonics, f.inner.sidebands), (1, 2));
        assert!(
            (f.inner.score_db - (14.0 + 0.5 * 8.0 * 2.0)).abs() < 1e-9,
            "{f:?}"
        );
    }

    #[test]
    fn a_shaft_harmonic_is_nobodys_evidence() {
        // 3 × shaft (90 Hz) lies 1.6 Hz from BPFO (91.6 Hz), inside its ± 2 % search: found
        // there, it is nearer to 3 × shaft and is not outer-race evidence; a line at BPFO is.
        let shaft = 30.0;
        let harmonic = line_families(shaft, &CWRU, 1.0, 0.02, spectrum(&[(3.0, 30.0)], shaft));
        assert_eq!(harmonic.outer.harmonics, 0, "{harmonic:?}");
        assert_eq!(harmonic.outer.score_db, 0.0, "{harmonic:?}");
        let bpfo = line_families(shaft, &CWRU, 1.0, 0.02, spectrum(&[(3.053, 30.0)], shaft));
        assert_eq!(bpfo.outer.harmonics, 1, "{bpfo:?}");
    }

    #[test]
    fn lines_within_half_a_bin_of_each_other_are_not_measured() {
        // BPFI − 1 (3.9469) and BSF (3.9874) are 1.2 Hz apart at 30 Hz: measured with 1 Hz
        // bins, not with 4 Hz bins.
        let shaft = 30.0;
        let fine = line_families(shaft, &CWRU, 1.0, 0.02, spectrum(&[], shaft));
        let coarse = line_families(shaft, &CWRU, 4.0, 0.02, spectrum(&[], shaft));
        assert!(
            coarse.inner.resolved < fine.inner.resolved,
            "{coarse:?} {fine:?}"
        );
        assert!(coarse.ball.resolved < fine.ball.resolved);
    }

    #[test]
    fn members_above_the_spectrum_are_not_counted() {
        let f = line_families(30.0, &CWRU, 1.0, 0.02, |f, _| {
            (f < 200.0).then_some((4.0, f))
        });
        // Below 200 Hz: BPFO 91.6, 2×BPFO 183.2 resolved; 3×, 4× above.
        assert_eq!(f.outer.resolved, 2);
    }
}
