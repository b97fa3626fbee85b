//! A minimal protocol-buffers writer, enough to emit ONNX `ModelProto` files without a
//! protobuf dependency. Fields are written in the order the caller gives them; nothing
//! is validated (malformed models are the point).

/// Wire types.
const VARINT: u32 = 0;
const FIXED32: u32 = 5;
const LEN: u32 = 2;

/// One protobuf message under construction.
#[derive(Clone, Debug, Default)]
pub struct Msg {
    buf: Vec<u8>,
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

impl Msg {
    pub fn new() -> Self {
        Self::default()
    }

    fn key(&mut self, field: u32, wire: u32) {
        put_varint(&mut self.buf, (u64::from(field) << 3) | u64::from(wire));
    }

    /// `int32` / `int64` / `uint64` / enum / bool (negative values: ten-byte two's
    /// complement, as protobuf does for int32 and int64).
    pub fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.key(field, VARINT);
        put_varint(&mut self.buf, v as u64);
        self
    }

    pub fn float(&mut self, field: u32, v: f32) -> &mut Self {
        self.key(field, FIXED32);
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn bytes(&mut self, field: u32, v: &[u8]) -> &mut Self {
        self.key(field, LEN);
        put_varint(&mut self.buf, v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }

    pub fn string(&mut self, field: u32, v: &str) -> &mut Self {
        self.bytes(field, v.as_bytes())
    }

    pub fn msg(&mut self, field: u32, m: &Msg) -> &mut Self {
        self.bytes(field, &m.buf)
    }

    /// A packed repeated `int64`.
    pub fn packed_ints(&mut self, field: u32, vs: &[i64]) -> &mut Self {
        let mut inner = Vec::new();
        for &v in vs {
            put_varint(&mut inner, v as u64);
        }
        self.bytes(field, &inner)
    }

    /// A packed repeated `float`.
    pub fn packed_floats(&mut self, field: u32, vs: &[f32]) -> &mut Self {
        let inner: Vec<u8> = vs.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.bytes(field, &inner)
    }

    /// Raw bytes appended as they are (a deliberately broken tail).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        let mut m = Msg::new();
        m.int(1, 150);
        assert_eq!(m.into_bytes(), [0x08, 0x96, 0x01]);
        let mut m = Msg::new();
        m.int(1, -1);
        assert_eq!(m.len(), 11);
    }
}
