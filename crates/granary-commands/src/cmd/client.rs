//! CLIENT subcommands.

use crate::ctx::CmdError;
use crate::table::Spec;

pub static COMMANDS: &[Spec] = &[];

/// Client names may not contain spaces, newlines or special characters.
pub fn validate_name(name: &[u8]) -> Result<(), CmdError> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(
            "ERR Client names cannot contain spaces, newlines or special characters.".into(),
        );
    }
    Ok(())
}
