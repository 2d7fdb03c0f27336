//! The purchase a customer is putting together in the bot (a `draft` order's selection). The step is derived
//! from what has been chosen, so it can never disagree with the choices.

use serde::{Deserialize, Serialize};

use super::DataCap;
use super::status::PaymentMethod;

/// What has been chosen so far, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_days: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seats: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataCap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<PaymentMethod>,
}

/// Where the customer is in the purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Location,
    Duration,
    Devices,
    Data,
    /// Everything chosen: the summary with the price and the payment methods.
    Summary,
}

impl Selection {
    pub fn step(&self) -> Step {
        match (&self.location, self.duration_days, self.seats, &self.data) {
            (None, ..) => Step::Location,
            (Some(_), None, ..) => Step::Duration,
            (Some(_), Some(_), None, _) => Step::Devices,
            (Some(_), Some(_), Some(_), None) => Step::Data,
            _ => Step::Summary,
        }
    }

    /// Whether anything was chosen (a draft worth offering to resume).
    pub fn is_started(&self) -> bool {
        self.location.is_some()
    }

    /// Goes back one step: forgets the latest choice.
    pub fn back(&mut self) {
        self.method = None;
        if self.data.take().is_some() {
            return;
        }
        if self.seats.take().is_some() {
            return;
        }
        if self.duration_days.take().is_some() {
            return;
        }
        self.location = None;
    }

    /// Sets the choice of the current step; later choices are forgotten.
    pub fn choose_location(&mut self, code: &str) {
        *self = Selection { location: Some(code.to_owned()), ..Selection::default() };
    }

    pub fn choose_duration(&mut self, days: i32) {
        self.duration_days = Some(days);
        self.seats = None;
        self.data = None;
        self.method = None;
    }

    pub fn choose_seats(&mut self, seats: i32) {
        self.seats = Some(seats);
        self.data = None;
        self.method = None;
    }

    pub fn choose_data(&mut self, data: DataCap) {
        self.data = Some(data);
        self.method = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_follows_the_choices_and_back_undoes_the_last() {
        let mut s = Selection::default();
        assert_eq!(s.step(), Step::Location);
        assert!(!s.is_started());
        s.choose_location("de");
        s.choose_duration(30);
        assert_eq!(s.step(), Step::Devices);
        s.choose_seats(2);
        s.choose_data(DataCap::Unlimited);
        assert_eq!(s.step(), Step::Summary);
        s.back();
        assert_eq!(s.step(), Step::Data);
        assert_eq!(s.seats, Some(2));
        s.back();
        s.back();
        s.back();
        assert_eq!(s, Selection::default());
    }

    #[test]
    fn changing_an_earlier_choice_forgets_the_later_ones() {
        let mut s = Selection::default();
        s.choose_location("de");
        s.choose_duration(30);
        s.choose_seats(2);
        s.choose_location("nl");
        assert_eq!(s.step(), Step::Duration);
        assert_eq!(s.seats, None);
    }

    #[test]
    fn a_selection_survives_the_database_round_trip() {
        let mut s = Selection::default();
        s.choose_location("fi");
        s.choose_duration(90);
        s.choose_seats(3);
        s.choose_data(DataCap::from_gb(100).unwrap());
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(serde_json::from_value::<Selection>(json).unwrap(), s);
        assert_eq!(serde_json::from_value::<Selection>(serde_json::json!({})).unwrap(), Selection::default());
    }
}
