//! Which bearing part is failing, from the physics: the envelope line families over the last
//! few windows of one sensor.
//!
//! One window's [`LineFamilies`] say how far the outer-race, inner-race and rolling-element
//! line families stand above chance. A [`Diagnoser`] keeps the last `windows` of them per
//! sensor and averages each family's score, so one lucky window neither makes nor breaks a
//! diagnosis. The physics **decides** the part when the evidence is unambiguous:
//!
//! - at least `min_windows` windows of the sensor have been seen (one window is never enough:
//!   a healthy machine's chance lines can line up once; an alert needs three windows anyway),
//! - the leading family's mean score is at least `decide_score_db`,
//! - it leads the runner-up by at least `lead_ratio` times, and
//! - it showed at least one line (≥ [`LINE_DB`](crate::analyze::features::LINE_DB)) in most
//!   of the recent windows.
//!
//! Otherwise the diagnosis is ambiguous and the classifier (if loaded) types the window; see
//! [`crate::analyze::alert::judge`] for how the two are combined. Pure: no clock, no I/O.

use crate::analyze::features::{FamilyEvidence, LineFamilies};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// `[diagnosis]` settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiagnosisConfig {
    /// Recent windows per sensor whose family scores are averaged.
    pub windows: usize,
    /// Windows seen before the physics may decide (at most `windows`).
    pub min_windows: usize,
    /// Least mean score of the leading family for the physics to decide, dB (see
    /// [`FamilyEvidence::score_db`]).
    pub decide_score_db: f64,
    /// Least ratio of the leading family's mean score to the runner-up's.
    pub lead_ratio: f64,
}

impl Default for DiagnosisConfig {
    fn default() -> Self {
        Self {
            windows: 5,
            min_windows: 3,
            decide_score_db: 12.0,
            lead_ratio: 2.0,
        }
    }
}

impl DiagnosisConfig {
    /// Checks ranges; returns `(field, reason)` for each problem.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        if !(1..=100).contains(&self.windows) {
            p.push((
                "windows",
                format!("{} must be within 1..=100", self.windows),
            ));
        }
        if self.min_windows == 0 || self.min_windows > self.windows {
            p.push((
                "min_windows",
                format!("{} must be within 1..=windows", self.min_windows),
            ));
        }
        if !(self.decide_score_db.is_finite() && self.decide_score_db > 0.0) {
            p.push((
                "decide_score_db",
                format!("{} must be > 0", self.decide_score_db),
            ));
        }
        if !(self.lead_ratio.is_finite() && self.lead_ratio >= 1.0) {
            p.push(("lead_ratio", format!("{} must be >= 1", self.lead_ratio)));
        }
        p
    }
}

/// The physics' verdict after one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnosis {
    /// `outer`, `inner` or `ball` when the evidence is unambiguous; `None` otherwise.
    pub part: Option<&'static str>,
    /// Mean score per family over [`Self::windows`] windows, dB: `(part, score)`, highest
    /// first.
    pub scores: [(&'static str, f64); 3],
    /// Windows averaged.
    pub windows: usize,
}

impl Diagnosis {
    /// One sentence for people: the scores and whether they decided.
    pub fn explain(&self) -> String {
        let [a, b, c] = self.scores;
        let scores = format!(
            "line families over {} windows: {} {:.0} dB, {} {:.0} dB, {} {:.0} dB",
            self.windows, a.0, a.1, b.0, b.1, c.0, c.1
        );
        match self.part {
            Some(p) => format!("{scores}: {p} is unambiguous"),
            None => format!("{scores}: ambiguous"),
        }
    }
}

/// Averages one sensor's recent line families and decides when the physics is sure.
#[derive(Debug, Clone)]
pub struct Diagnoser {
    cfg: DiagnosisConfig,
    recent: VecDeque<LineFamilies>,
}

impl Diagnoser {
    /// An empty history.
    pub fn new(cfg: DiagnosisConfig) -> Self {
        Self {
            cfg,
            recent: VecDeque::with_capacity(cfg.windows),
        }
    }

    /// Adds one window's families and returns the diagnosis over the recent windows.
    pub fn observe(&mut self, families: &LineFamilies) -> Diagnosis {
        if self.recent.len() == self.cfg.windows.max(1) {
            self.recent.pop_front();
        }
        self.recent.push_back(*families);
        let n = self.recent.len();
        let mean = |pick: fn(&LineFamilies) -> FamilyEvidence| {
            let score = self.recent.iter().map(|f| pick(f).score_db).sum::<f64>() / n as f64;
            let with_line = self.recent.iter().filter(|f| pick(f).harmonics > 0).count();
            (score, 2 * with_line > n)
        };
        let mut parts = [
            ("outer", mean(|f| f.outer)),
            ("inner", mean(|f| f.inner)),
            ("ball", mean(|f| f.ball)),
        ];
        parts.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
        let (best, (score, lines)) = parts[0];
        let runner_up = parts[1].1.0;
        let decided = n >= self.cfg.min_windows
            && score >= self.cfg.decide_score_db
            && score >= self.cfg.lead_ratio * runner_up
            && lines;
        Diagnosis {
            part: decided.then_some(best),
            scores: parts.map(|(p, (s, _))| (p, s)),
            windows: n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(score_db: f64, harmonics: u8) -> FamilyEvidence {
        FamilyEvidence {
            score_db,
            harmonics,
            sidebands: 0,
            resolved: 4,
            peak_db: CHANCE + score_db,
        }
    }
    const CHANCE: f64 = 6.0;

    fn window(outer: f64, inner: f64, ball: f64) -> LineFamilies {
        let lines = |s: f64| u8::from(s >= 4.0);
        LineFamilies {
            outer: family(outer, lines(outer)),
            inner: family(inner, lines(inner)),
            ball: family(ball, lines(ball)),
        }
    }

    /// A diagnoser that has seen `n` windows like `w`; returns the last verdict.
    fn after(n: usize, w: LineFamilies) -> Diagnosis {
        let mut d = Diagnoser::new(DiagnosisConfig::default());
        (0..n).map(|_| d.observe(&w)).last().expect("n > 0")
    }

    #[test]
    fn a_clear_family_decides_and_an_even_contest_does_not() {
        // One or two windows are never enough; the third decides.
        assert_eq!(after(1, window(30.0, 5.0, 3.0)).part, None);
        assert_eq!(after(2, window(30.0, 5.0, 3.0)).part, None);
        let v = after(3, window(30.0, 5.0, 3.0));
        assert_eq!(v.part, Some("outer"));
        assert_eq!(v.scores[0], ("outer", 30.0));
        assert!(
            v.explain().contains("outer is unambiguous"),
            "{}",
            v.explain()
        );
        let v = after(3, window(20.0, 14.0, 3.0));
        assert_eq!(v.part, None, "20 vs 14 is not a 2x lead");
        assert!(v.explain().ends_with("ambiguous"));
        assert_eq!(after(3, window(10.0, 2.0, 1.0)).part, None, "below 12 dB");
    }

    #[test]
    fn one_lucky_window_is_averaged_away() {
        let mut d = Diagnoser::new(DiagnosisConfig::default());
        for _ in 0..4 {
            assert_eq!(d.observe(&window(3.0, 4.0, 2.0)).part, None);
        }
        // 40 dB in one window of five: mean (12 + 40) / 5 = 10.4 < 12.
        let v = d.observe(&window(40.0, 4.0, 2.0));
        assert_eq!(v.part, None, "{v:?}");
        // Sustained, it decides once most of the recent windows show a line.
        let parts: Vec<_> = (0..4)
            .map(|_| d.observe(&window(40.0, 4.0, 2.0)).part)
            .collect();
        assert_eq!(parts, [None, Some("outer"), Some("outer"), Some("outer")]);
    }

    #[test]
    fn a_score_without_a_single_line_does_not_decide() {
        let mut w = window(20.0, 1.0, 1.0);
        w.outer.harmonics = 0;
        assert_eq!(after(5, w).part, None);
    }

    #[test]
    fn bad_settings_are_named() {
        let cfg = DiagnosisConfig {
            windows: 0,
            min_windows: 1,
            decide_score_db: -1.0,
            lead_ratio: 0.5,
        };
        let fields: Vec<_> = cfg.problems().into_iter().map(|p| p.0).collect();
        assert_eq!(
            fields,
            ["windows", "min_windows", "decide_score_db", "lead_ratio"]
        );
        assert!(DiagnosisConfig::default().problems().is_empty());
    }
}
