//! Where a PUBLISH is routed: the subscription tree ([`subscriptions`]), the
//! retained messages ([`retained`]) and the router that ties them to the
//! sessions ([`router`]).

pub(crate) mod retained;
pub(crate) mod router;
pub(crate) mod shared;
pub(crate) mod subscriptions;
