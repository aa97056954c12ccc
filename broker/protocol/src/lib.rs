//! moth's MQTT protocol layer, sans I/O: bytes in, packets out.
//!
//! - [`packet`]: the packets of MQTT 5.0, 3.1.1 and 3.1, as values.
//! - [`reason`]: MQTT 5 reason codes.
//! - [`codec`]: decoding from and encoding to a byte buffer, per version,
//!   with every malformed-packet rule of the standard (a decode error names
//!   the rule).
//! - [`topic`]: topic names and filters, their validation and matching.
//! - [`message`]: the application message a PUBLISH or a will carries.
//!
//! Nothing here does I/O or depends on a runtime; the broker's connection
//! driver feeds bytes in and writes the encoded bytes out.

pub mod codec;
pub mod message;
pub mod packet;
pub mod reason;
pub mod topic;
