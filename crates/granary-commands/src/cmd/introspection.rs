use crate::table::Spec;

pub static COMMANDS: &[Spec] = &[];
