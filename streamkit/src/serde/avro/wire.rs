//! The Confluent wire format: magic byte 0, a 4-byte big-endian schema id, the Avro binary.

use crate::error::SerdeError;

/// The first byte of every record in the Confluent wire format.
pub const MAGIC_BYTE: u8 = 0;

/// Length of the prefix before the Avro binary.
pub const HEADER_LEN: usize = 5;

/// Appends the wire-format prefix for `schema_id` to `out`.
pub fn write_header(schema_id: u32, out: &mut Vec<u8>) {
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

/// Splits a record into its schema id and Avro binary.
pub fn read_header(data: &[u8]) -> Result<(u32, &[u8]), SerdeError> {
    match data {
        [MAGIC_BYTE, a, b, c, d, rest @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), rest)),
        [MAGIC_BYTE, ..] => Err(SerdeError::Invalid(format!(
            "avro: record of {} bytes is shorter than the 5-byte confluent wire-format header",
            data.len()
        ))),
        [other, ..] => Err(SerdeError::Invalid(format!(
            "avro: unknown magic byte {other:#04x}; the confluent wire format starts with 0x00"
        ))),
        [] => Err(SerdeError::Invalid(
            "avro: empty record; the confluent wire format needs at least 5 bytes".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_names_what_is_wrong() {
        let mut buf = Vec::new();
        write_header(0x0102_0304, &mut buf);
        buf.push(42);
        assert_eq!(buf, [0, 1, 2, 3, 4, 42]);
        assert_eq!(read_header(&buf).unwrap(), (0x0102_0304, &[42u8][..]));
        let err = read_header(b"{\"a\":1}").unwrap_err().to_string();
        assert!(err.contains("unknown magic byte 0x7b"), "{err}");
        let err = read_header(&[0, 0, 1]).unwrap_err().to_string();
        assert!(err.contains("shorter than the 5-byte"), "{err}");
    }
}
