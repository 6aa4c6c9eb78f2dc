//! The rules of dashboard accounts: what a username may be, how long a password must be, and
//! which roles an account can hold (API tokens carry the others). The HTTP API, the CLI and the
//! login throttle use these; each edge only translates the error.

use super::Role;

/// Usernames are 3 to 32 of these bytes: ASCII letters, digits, dots, dashes, underscores.
pub const USERNAME_LEN: std::ops::RangeInclusive<usize> = 3..=32;
/// Passwords are 10 to 256 characters (at most 256 bytes).
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 10..=256;

/// Why an account cannot be saved as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccountRuleError {
    #[error("must be 3 to 32 letters, digits, dots, dashes or underscores")]
    Username,
    #[error("must be 10 to 256 characters")]
    Password,
    #[error("must be admin or operator")]
    Role,
}

impl AccountRuleError {
    /// The input the error is about.
    pub fn field(self) -> &'static str {
        match self {
            AccountRuleError::Username => "username",
            AccountRuleError::Password => "password",
            AccountRuleError::Role => "role",
        }
    }
}

/// Whether an account could have this name; a login with any other name is no account's.
pub fn is_account_name(name: &str) -> bool {
    USERNAME_LEN.contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Checks a new account (or a new password or role for an existing one).
pub fn check_account(username: &str, password: &str, role: Role) -> Result<(), AccountRuleError> {
    if !is_account_name(username) {
        return Err(AccountRuleError::Username);
    }
    if !PASSWORD_CHARS.contains(&password.chars().count()) || password.len() > *PASSWORD_CHARS.end()
    {
        return Err(AccountRuleError::Password);
    }
    if !matches!(role, Role::Admin | Role::Operator) {
        return Err(AccountRuleError::Role);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_rules() {
        assert!(is_account_name("ops.lead-2_b"));
        for bad in ["ab", &"a".repeat(33), "with space", "名字", "a&b"] {
            assert!(!is_account_name(bad), "{bad}");
        }
        assert_eq!(check_account("boss", "long enough!", Role::Admin), Ok(()));
        assert_eq!(
            check_account("boss", "short", Role::Admin),
            Err(AccountRuleError::Password)
        );
        assert_eq!(
            check_account("boss", &"é".repeat(200), Role::Operator),
            Err(AccountRuleError::Password),
            "200 characters but 400 bytes"
        );
        assert_eq!(
            check_account("boss", "long enough!", Role::Agent),
            Err(AccountRuleError::Role)
        );
        assert_eq!(AccountRuleError::Role.field(), "role");
    }
}
