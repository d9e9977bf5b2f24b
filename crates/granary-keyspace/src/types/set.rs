//! SetValue: placeholder until the set family lands (issue 3).

#[derive(Clone, Default, Debug)]
pub struct SetValue {}

impl SetValue {
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
