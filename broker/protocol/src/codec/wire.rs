//! The field encodings every packet is built from (MQTT 5.0 section 1.5,
//! 3.1.1 section 1.5): checked reads over one frame, and the writes that
//! mirror them.

use bytes::{BufMut, Bytes, BytesMut};

use super::DecodeError;

/// Largest value the 4-byte variable byte integer can express.
pub(crate) const MAX_VARINT: usize = 268_435_455;

/// Checked reads over the body of one frame. Every read is bounds-checked so
/// that a remaining length too small for the fields is an error, not a panic;
/// binary fields are `Bytes` slices of the frame (zero-copy).
pub(crate) struct Reader {
    data: Bytes,
    pos: usize,
    pub(crate) packet: &'static str,
}

impl Reader {
    pub(crate) fn new(data: Bytes, packet: &'static str) -> Reader {
        Reader { data, pos: 0, packet }
    }

    pub(crate) fn truncated(&self) -> DecodeError {
        DecodeError::Truncated { packet: self.packet }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let start = self.pos;
        let end = start.saturating_add(n);
        if end > self.data.len() {
            return Err(self.truncated());
        }
        self.pos = end;
        Ok(self.data.get(start..end).unwrap_or_default())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let truncated = self.truncated();
        self.take(N)?.try_into().map_err(|_| truncated)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let [b] = self.array()?;
        Ok(b)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A variable byte integer: at most four bytes [MQTT-1.5.5-1].
    /// Non-minimal encodings are accepted, as for the remaining length.
    pub(crate) fn varint(&mut self) -> Result<u32, DecodeError> {
        let mut value = 0u32;
        for i in 0..4 {
            let b = self.u8()?;
            value |= u32::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::MalformedVarint { packet: self.packet })
    }

    /// A packet identifier, which is never 0 [MQTT-2.3.1-1].
    pub(crate) fn packet_id(&mut self) -> Result<u16, DecodeError> {
        match self.u16()? {
            0 => Err(DecodeError::ZeroPacketId(self.packet)),
            id => Ok(id),
        }
    }

    /// Length-prefixed binary data, as a slice of the frame.
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = usize::from(self.u16()?);
        let start = self.pos;
        self.take(len)?;
        Ok(self.data.slice(start..self.pos))
    }

    /// A length-prefixed UTF-8 string, validated [MQTT-1.5.3-1, MQTT-1.5.3-2].
    /// Borrowed, so a topic becomes an `Arc<str>` without going through a
    /// `String` first. `from_utf8` already refuses surrogates and overlong
    /// forms; a BOM is kept as is [MQTT-1.5.3-3].
    pub(crate) fn string(&mut self) -> Result<&str, DecodeError> {
        let len = usize::from(self.u16()?);
        let s = std::str::from_utf8(self.take(len)?).map_err(|_| DecodeError::InvalidUtf8)?;
        if s.contains('\0') {
            return Err(DecodeError::NullCharacter);
        }
        Ok(s)
    }

    /// A string that names something (client identifier, user name, topic,
    /// filter): [`Reader::string`] without control characters U+0001..U+001F
    /// and U+007F..U+009F, which the standard says such strings should not
    /// hold [MQTT-1.5.4] and which would let a client forge log lines or
    /// hide a topic from the people reading them. Mosquitto refuses them too.
    pub(crate) fn name(&mut self) -> Result<&str, DecodeError> {
        let s = self.string()?;
        // On the bytes of valid UTF-8 (every topic of every PUBLISH passes
        // here): U+0001..U+001F and U+007F are single bytes, U+0080..U+009F
        // are 0xC2 followed by 0x80..=0x9F.
        let b = s.as_bytes();
        if b.iter().any(|&c| c < 0x20 || c == 0x7F) || b.windows(2).any(|w| w[0] == 0xC2 && w[1] < 0xA0) {
            return Err(DecodeError::ControlCharacter);
        }
        Ok(s)
    }

    /// A topic filter of SUBSCRIBE or UNSUBSCRIBE: a [`Reader::name`] that
    /// is a valid filter [MQTT-4.7.1-2, MQTT-4.7.1-3, MQTT-4.7.3-1].
    pub(crate) fn filter(&mut self) -> Result<String, DecodeError> {
        let packet = self.packet;
        let filter = self.name()?;
        if crate::topic::is_valid_filter(filter) {
            Ok(filter.to_owned())
        } else {
            Err(DecodeError::InvalidTopicFilter(packet))
        }
    }

    /// The next `len` bytes as a reader of their own (a property list).
    pub(crate) fn sub(&mut self, len: usize) -> Result<Reader, DecodeError> {
        let start = self.pos;
        self.take(len)?;
        Ok(Reader { data: self.data.slice(start..self.pos), pos: 0, packet: self.packet })
    }

    pub(crate) fn rest(&mut self) -> Bytes {
        let start = self.pos;
        self.pos = self.data.len();
        self.data.slice(start..)
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The remaining length must match the fields exactly.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.is_empty() { Ok(()) } else { Err(DecodeError::TrailingBytes { packet: self.packet }) }
    }
}

/// Number of bytes of the variable byte integer for `value`.
pub(crate) fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes a variable byte integer, minimal form [MQTT-1.5.5-1].
pub(crate) fn put_varint(out: &mut BytesMut, mut value: usize) {
    loop {
        // Truncation intended: the low seven bits of `value`.
        let mut byte = (value & 0x7F) as u8;
        value >>= 7;
        if value > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if value == 0 {
            break;
        }
    }
}

/// Writes a length-prefixed string or binary field.
///
/// # Panics
/// If `data` is longer than 65 535 bytes, which no MQTT field can carry.
pub(crate) fn put_field(out: &mut BytesMut, data: &[u8]) {
    let Ok(len) = u16::try_from(data.len()) else {
        panic!("MQTT field of {} bytes exceeds 65535", data.len());
    };
    out.put_u16(len);
    out.put_slice(data);
}

/// Reserves room for the whole packet once, then writes its fixed header.
///
/// # Panics
/// If `remaining` exceeds [`MAX_VARINT`]: such a packet cannot be
/// framed at all, and writing a wrong length would corrupt the stream for
/// every later packet. Callers building packets from local input (e.g. an
/// embedding application publishing) must check sizes beforehand.
pub(crate) fn begin(out: &mut BytesMut, first: u8, remaining: usize) {
    assert!(remaining <= MAX_VARINT, "MQTT packet body of {remaining} bytes exceeds the maximum remaining length");
    out.reserve(1 + varint_len(remaining) + remaining);
    out.put_u8(first);
    put_varint(out, remaining);
}
