//! The state machines of orders, payments and subscriptions. Every transition the system makes is checked
//! here first; an illegal one is an error, never applied.

crate::text_enum! {
    pub enum OrderStatus {
        Draft => "draft",
        AwaitingPayment => "awaiting_payment",
        Paid => "paid",
        Fulfilled => "fulfilled",
        Cancelled => "cancelled",
        Expired => "expired",
        Refunded => "refunded",
    }
}

crate::text_enum! {
    pub enum PaymentMethod {
        Card => "card",
        Stripe => "stripe",
        Zarinpal => "zarinpal",
    }
}

crate::text_enum! {
    pub enum PaymentStatus {
        Pending => "pending",
        UnderReview => "under_review",
        Accepted => "accepted",
        Rejected => "rejected",
        AutoAccepted => "auto_accepted",
        Succeeded => "succeeded",
        Failed => "failed",
        Refunded => "refunded",
    }
}

crate::text_enum! {
    pub enum SubscriptionStatus {
        Pending => "pending",
        Active => "active",
        Limited => "limited",
        Expired => "expired",
        Revoked => "revoked",
    }
}

crate::text_enum! {
    /// Whether a client (seat) is on its node: wanted there (`clients.desired`) or seen there
    /// (`clients.node_state`).
    pub enum Presence {
        Present => "present",
        Absent => "absent",
    }
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entity} cannot go from {from} to {to}")]
pub struct IllegalTransition {
    pub entity: &'static str,
    pub from: &'static str,
    pub to: &'static str,
}

impl OrderStatus {
    pub fn can_become(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, to),
            (Draft, AwaitingPayment)
                | (AwaitingPayment, Paid)
                | (Paid, Fulfilled)
                | (Draft | AwaitingPayment, Cancelled | Expired)
                | (Paid | Fulfilled, Refunded)
                // its payment was accepted automatically and then rejected by an admin: what it granted is taken back
                | (Fulfilled, Cancelled)
                // a gateway took the money after the order expired or was cancelled: the customer gets what they paid for
                | (Expired | Cancelled, Paid)
        )
    }

    pub fn check(self, to: OrderStatus) -> Result<(), IllegalTransition> {
        check("order", self, to, self.can_become(to), Self::as_str)
    }
}

impl PaymentStatus {
    /// Whether a payment in this status has brought money in.
    pub fn is_settled(self) -> bool {
        matches!(self, PaymentStatus::Accepted | PaymentStatus::AutoAccepted | PaymentStatus::Succeeded)
    }

    pub fn can_become(self, to: PaymentStatus, method: PaymentMethod) -> bool {
        use PaymentStatus::*;
        let card = method == PaymentMethod::Card;
        match (self, to) {
            (Pending, UnderReview) => card,
            (UnderReview, Accepted | Rejected | AutoAccepted) => card,
            // an admin overrules the automatic acceptance of an overdue review
            (AutoAccepted, Rejected) => card,
            (Pending, Succeeded | Failed) => !card,
            // the gateway took the money after all (a late completion after an expiry or a failed verify)
            (Failed, Succeeded) => !card,
            // refunded before its completion was reported (events out of order)
            (Pending, Refunded) => !card,
            (from, Refunded) => from.is_settled(),
            _ => false,
        }
    }

    pub fn check(self, to: PaymentStatus, method: PaymentMethod) -> Result<(), IllegalTransition> {
        check("payment", self, to, self.can_become(to, method), Self::as_str)
    }
}

impl SubscriptionStatus {
    pub fn can_become(self, to: SubscriptionStatus) -> bool {
        use SubscriptionStatus::*;
        matches!(
            (self, to),
            (Pending, Active)
                | (Active, Limited | Expired | Revoked)
                | (Limited, Active | Expired | Revoked)
                | (Expired, Active | Revoked)
                | (Pending, Revoked)
        )
    }

    pub fn check(self, to: SubscriptionStatus) -> Result<(), IllegalTransition> {
        check("subscription", self, to, self.can_become(to), Self::as_str)
    }
}

fn check<S: Copy>(
    entity: &'static str,
    from: S,
    to: S,
    allowed: bool,
    name: fn(S) -> &'static str,
) -> Result<(), IllegalTransition> {
    if allowed { Ok(()) } else { Err(IllegalTransition { entity, from: name(from), to: name(to) }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_follow_their_state_machine() {
        use OrderStatus::*;
        assert!(Draft.check(AwaitingPayment).is_ok());
        assert!(AwaitingPayment.check(Paid).is_ok());
        assert!(Paid.check(Fulfilled).is_ok());
        assert!(Fulfilled.check(Refunded).is_ok());
        let err = Draft.check(Paid).unwrap_err();
        assert_eq!(err.to_string(), "order cannot go from draft to paid");
        assert!(Paid.check(Cancelled).is_err(), "money taken: cancel is refund");
        assert!(Cancelled.check(AwaitingPayment).is_err());
        assert!(Paid.check(Paid).is_err(), "no self transitions: nothing is applied twice");
    }

    #[test]
    fn card_payments_are_reviewed_and_gateway_payments_succeed_or_fail() {
        use PaymentMethod::*;
        use PaymentStatus::*;
        assert!(Pending.check(UnderReview, Card).is_ok());
        assert!(UnderReview.check(AutoAccepted, Card).is_ok());
        assert!(Pending.check(UnderReview, Stripe).is_err());
        assert!(Pending.check(Succeeded, Zarinpal).is_ok());
        assert!(Pending.check(Succeeded, Card).is_err());
        assert!(Accepted.check(Rejected, Card).is_err(), "an admin's decision is final");
        assert!(AutoAccepted.check(Rejected, Card).is_ok(), "an automatic acceptance can be overruled");
        assert!(AutoAccepted.check(Accepted, Card).is_err());
        assert!(Rejected.check(Refunded, Card).is_err(), "only money taken can be refunded");
        assert!(Succeeded.check(Refunded, Stripe).is_ok());
    }

    #[test]
    fn subscriptions_follow_their_state_machine() {
        use SubscriptionStatus::*;
        assert!(Pending.check(Active).is_ok());
        assert!(Active.check(Limited).is_ok());
        assert!(Limited.check(Active).is_ok(), "top-up");
        assert!(Expired.check(Active).is_ok(), "renewal");
        assert!(Revoked.check(Active).is_err());
        assert!(Pending.check(Expired).is_err());
    }

    #[test]
    fn statuses_parse_from_their_database_text() {
        assert_eq!("under_review".parse::<PaymentStatus>().unwrap(), PaymentStatus::UnderReview);
        assert!("bogus".parse::<OrderStatus>().is_err());
        for s in SubscriptionStatus::ALL {
            assert_eq!(s.as_str().parse::<SubscriptionStatus>().unwrap(), *s);
        }
    }
}
