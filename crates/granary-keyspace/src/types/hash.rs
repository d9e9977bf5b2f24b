//! HashValue: placeholder until the hash family lands (issue 3).

#[derive(Clone, Default, Debug)]
pub struct HashValue {}

impl HashValue {
    pub fn len(&self) -> usize {
        0
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name OBJECT ENCODING replies with.
    pub fn encoding(&self) -> &'static str {
        "listpack"
    }
}
