//! Rolling-element bearing kinematics: the characteristic defect frequencies.
//!
//! A localised defect on one bearing part is struck once per passage of a rolling element
//! (or, for a defect on a rolling element, once per contact with a race). Assuming pure
//! rolling without slip, a stationary outer race and a shaft turning at `f_r`, the impact
//! rates as multiples of `f_r` depend only on the geometry (Harris; Randall & Antoni 2011):
//!
//! ```text
//! with n = rolling elements, d = element diameter, D = pitch diameter, θ = contact angle,
//!      ρ = (d / D) · cos θ
//! FTF  (cage, fundamental train) = ½ (1 − ρ)
//! BPFO (ball pass, outer race)   = n/2 · (1 − ρ)
//! BPFI (ball pass, inner race)   = n/2 · (1 + ρ)
//! BSF  (ball spin)               = D / (2d) · (1 − ρ²)
//! ```
//!
//! **BSF convention.** [`FaultOrders::bsf`] is the spin frequency of one element about its own
//! axis. A spalled element strikes the inner *and* the outer race once per spin, so its
//! impacts repeat at `2 · BSF`. Some tables (the Case Western Reserve University bearing data
//! among them) list that `2 · BSF` figure under the name "BSF"; compare with care.
//!
//! Real bearings slip by 1–2 %, so measured lines sit slightly off these values and smear;
//! the vibration synthesiser models that, this module does not.

use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

/// A bearing geometry that cannot describe a real bearing.
///
/// Not recoverable by retrying: the configuration has to be fixed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum BearingError {
    /// A field is out of range; `field` names it relative to the geometry table.
    #[error("{field}: {reason}")]
    Invalid {
        /// The offending field, e.g. `element_diameter_mm`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Geometry of a rolling-element bearing, enough to compute its defect frequencies.
///
/// Invariants (checked by [`BearingGeometry::validate`]): at least three rolling elements,
/// finite positive diameters with `element_diameter_mm < pitch_diameter_mm`, and a contact
/// angle in `0..90` degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BearingGeometry {
    /// Number of balls or rollers.
    pub rolling_elements: u32,
    /// Diameter of one rolling element, millimetres.
    pub element_diameter_mm: f64,
    /// Pitch diameter (circle through the element centres), millimetres.
    pub pitch_diameter_mm: f64,
    /// Contact angle, degrees; 0 for a deep-groove ball bearing under radial load.
    pub contact_angle_deg: f64,
}

/// Characteristic defect frequencies as multiples of the shaft rotation frequency.
///
/// See the module docs for the formulas and the BSF convention.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultOrders {
    /// Ball pass frequency, outer race.
    pub bpfo: f64,
    /// Ball pass frequency, inner race.
    pub bpfi: f64,
    /// Ball (element) spin frequency; a spalled element impacts at twice this.
    pub bsf: f64,
    /// Fundamental train (cage) frequency.
    pub ftf: f64,
}

/// Characteristic defect frequencies in hertz at one shaft speed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultFrequencies {
    /// Shaft rotation frequency, Hz.
    pub shaft_hz: f64,
    /// Ball pass frequency, outer race, Hz.
    pub bpfo_hz: f64,
    /// Ball pass frequency, inner race, Hz.
    pub bpfi_hz: f64,
    /// Ball spin frequency, Hz (rolling-element impacts repeat at twice this).
    pub bsf_hz: f64,
    /// Cage frequency, Hz.
    pub ftf_hz: f64,
}

impl FaultOrders {
    /// The orders converted to hertz at `rpm` shaft revolutions per minute.
    pub fn at_rpm(&self, rpm: f64) -> FaultFrequencies {
        let shaft_hz = rpm / 60.0;
        FaultFrequencies {
            shaft_hz,
            bpfo_hz: self.bpfo * shaft_hz,
            bpfi_hz: self.bpfi * shaft_hz,
            bsf_hz: self.bsf * shaft_hz,
            ftf_hz: self.ftf * shaft_hz,
        }
    }
}

/// Names accepted by [`BearingGeometry::preset`], and in a scenario's `bearing = "..."`.
pub const PRESET_NAMES: &[&str] = &["skf-6203", "skf-6205"];

impl BearingGeometry {
    /// SKF 6203-2RS JEM deep-groove ball bearing, as documented for the fan-end bearing of the
    /// Case Western Reserve University bearing data set: 8 balls of 0.2656 in on a 1.122 in
    /// pitch circle.
    pub const fn skf_6203() -> Self {
        Self {
            rolling_elements: 8,
            element_diameter_mm: 6.746,
            pitch_diameter_mm: 28.499,
            contact_angle_deg: 0.0,
        }
    }

    /// SKF 6205-2RS JEM deep-groove ball bearing, as documented for the drive-end bearing of the
    /// Case Western Reserve University bearing data set: 9 balls of 0.3126 in on a 1.537 in
    /// pitch circle.
    pub const fn skf_6205() -> Self {
        Self {
            rolling_elements: 9,
            element_diameter_mm: 7.940,
            pitch_diameter_mm: 39.040,
            contact_angle_deg: 0.0,
        }
    }

    /// The geometry for a name in [`PRESET_NAMES`], or `None`.
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "skf-6203" => Some(Self::skf_6203()),
            "skf-6205" => Some(Self::skf_6205()),
            _ => None,
        }
    }

    /// Checks the invariants listed on the type.
    pub fn validate(&self) -> Result<(), BearingError> {
        let invalid = |field, reason: &str| {
            Err(BearingError::Invalid {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.rolling_elements < 3 {
            return invalid("rolling_elements", "must be at least 3");
        }
        if !(self.element_diameter_mm.is_finite() && self.element_diameter_mm > 0.0) {
            return invalid("element_diameter_mm", "must be finite and > 0");
        }
        if !(self.pitch_diameter_mm.is_finite() && self.pitch_diameter_mm > 0.0) {
            return invalid("pitch_diameter_mm", "must be finite and > 0");
        }
        if self.element_diameter_mm >= self.pitch_diameter_mm {
            return invalid(
                "element_diameter_mm",
                "must be smaller than pitch_diameter_mm",
            );
        }
        if !(0.0..90.0).contains(&self.contact_angle_deg) {
            return invalid("contact_angle_deg", "must be within 0..90");
        }
        Ok(())
    }

    /// Characteristic defect frequencies as multiples of shaft speed (see the module docs).
    ///
    /// Meaningful only for a geometry that passes [`validate`](Self::validate).
    pub fn orders(&self) -> FaultOrders {
        let n = f64::from(self.rolling_elements);
        let ratio = self.element_diameter_mm / self.pitch_diameter_mm;
        let rho = ratio * self.contact_angle_deg.to_radians().cos();
        FaultOrders {
            bpfo: n / 2.0 * (1.0 - rho),
            bpfi: n / 2.0 * (1.0 + rho),
            bsf: 1.0 / (2.0 * ratio) * (1.0 - rho * rho),
            ftf: 0.5 * (1.0 - rho),
        }
    }
}

impl Default for BearingGeometry {
    /// [`BearingGeometry::skf_6205`], a common motor and pump bearing.
    fn default() -> Self {
        Self::skf_6205()
    }
}

/// Deserialises a bearing given either as a preset name (`"skf-6205"`) or as a geometry table.
///
/// Used by `#[serde(deserialize_with)]` on configuration fields so that scenario files can say
/// `bearing = "skf-6203"`. Unknown preset names are an error that lists the known ones.
pub fn deserialize_geometry_or_preset<'de, D>(deserializer: D) -> Result<BearingGeometry, D::Error>
where
    D: Deserializer<'de>,
{
    struct Visitor;

    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = BearingGeometry;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                f,
                "a bearing preset name ({}) or a geometry table",
                PRESET_NAMES.join(", ")
            )
        }

        fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<BearingGeometry, E> {
            BearingGeometry::preset(name).ok_or_else(|| {
                E::custom(format!(
                    "unknown bearing preset `{name}`, expected one of: {}",
                    PRESET_NAMES.join(", ")
                ))
            })
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            map: A,
        ) -> Result<BearingGeometry, A::Error> {
            BearingGeometry::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }

    deserializer.deserialize_any(Visitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_within_percent(actual: f64, expected: f64, percent: f64, what: &str) {
        let error = (actual - expected).abs() / expected * 100.0;
        assert!(
            error <= percent,
            "{what}: {actual:.4} differs from {expected:.4} by {error:.3} %"
        );
    }

    #[test]
    fn skf_6203_orders_match_the_published_orders_within_one_percent() {
        // Published for the CWRU fan-end bearing; its "BSF" is our 2 × BSF.
        let orders = BearingGeometry::skf_6203().orders();
        assert_within_percent(orders.bpfi, 4.9469, 1.0, "BPFI");
        assert_within_percent(orders.bpfo, 3.0530, 1.0, "BPFO");
        assert_within_percent(orders.ftf, 0.3817, 1.0, "FTF");
        assert_within_percent(2.0 * orders.bsf, 3.9874, 1.0, "2 x BSF");
    }

    #[test]
    fn skf_6205_orders_match_the_published_orders_within_one_percent() {
        let orders = BearingGeometry::skf_6205().orders();
        assert_within_percent(orders.bpfi, 5.4152, 1.0, "BPFI");
        assert_within_percent(orders.bpfo, 3.5848, 1.0, "BPFO");
        assert_within_percent(orders.ftf, 0.39828, 1.0, "FTF");
        assert_within_percent(2.0 * orders.bsf, 4.7135, 1.0, "2 x BSF");
    }

    #[test]
    fn ball_pass_frequencies_sum_to_the_number_of_elements() {
        // BPFO + BPFI = n holds for any geometry: a check on the formulas, not the data.
        let geometry = BearingGeometry {
            rolling_elements: 13,
            element_diameter_mm: 11.0,
            pitch_diameter_mm: 71.5,
            contact_angle_deg: 25.0,
        };
        let orders = geometry.orders();
        assert!((orders.bpfo + orders.bpfi - 13.0).abs() < 1e-12);
        assert!((orders.bpfo - 13.0 * orders.ftf).abs() < 1e-12);
    }

    #[test]
    fn orders_convert_to_hertz_at_a_shaft_speed() {
        let hz = BearingGeometry::skf_6205().orders().at_rpm(1800.0);
        assert!((hz.shaft_hz - 30.0).abs() < 1e-12);
        assert_within_percent(hz.bpfo_hz, 3.5848 * 30.0, 1.0, "BPFO Hz");
    }

    #[test]
    fn an_element_as_large_as_the_pitch_circle_is_rejected_naming_the_field() {
        let geometry = BearingGeometry {
            element_diameter_mm: 40.0,
            ..BearingGeometry::skf_6205()
        };
        let error = geometry.validate().unwrap_err();
        assert!(
            error.to_string().starts_with("element_diameter_mm:"),
            "{error}"
        );
    }

    #[test]
    fn too_few_elements_and_a_right_contact_angle_are_rejected() {
        let few = BearingGeometry {
            rolling_elements: 2,
            ..BearingGeometry::skf_6203()
        };
        assert!(
            few.validate()
                .unwrap_err()
                .to_string()
                .starts_with("rolling_elements:")
        );
        let flat = BearingGeometry {
            contact_angle_deg: 90.0,
            ..BearingGeometry::skf_6203()
        };
        assert!(
            flat.validate()
                .unwrap_err()
                .to_string()
                .starts_with("contact_angle_deg:")
        );
    }

    #[test]
    fn every_preset_name_resolves_to_a_valid_geometry() {
        for name in PRESET_NAMES {
            let geometry = BearingGeometry::preset(name).unwrap();
            geometry.validate().unwrap();
        }
        assert_eq!(BearingGeometry::preset("skf-9999"), None);
    }
}
