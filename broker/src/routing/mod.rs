//! Where a PUBLISH is routed: the subscription tree ([`subscriptions`]), the
//! retained messages ([`retained`]) and the router that ties them to the
//! sessions ([`router`]).

pub mod retained;
pub mod router;
pub mod shared;
pub mod subscriptions;
