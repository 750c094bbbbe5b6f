//! Passwords of the `default` user (`requirepass`), checked the same way by AUTH, HELLO and
//! the clients answered while a script holds the server.

/// Checks a password for the default user against `requirepass`.
///
/// # Errors
/// Redis's error line for the failure.
pub fn check_default_user(
    requirepass: Option<&str>,
    user: Option<&[u8]>,
    pass: &[u8],
) -> Result<(), &'static str> {
    const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
    let Some(required) = requirepass else {
        return match user {
            None => Err(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            ),
            Some(b"default") => Ok(()),
            Some(_) => Err(WRONGPASS),
        };
    };
    let user_ok = user.is_none_or(|u| u == b"default");
    if user_ok && constant_time_eq(pass, required.as_bytes()) {
        Ok(())
    } else {
        Err(WRONGPASS)
    }
}

/// Compares secrets without leaking the position of the first difference through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_user_passwords() {
        assert_eq!(check_default_user(Some("pw"), None, b"pw"), Ok(()));
        assert_eq!(
            check_default_user(Some("pw"), Some(b"default"), b"pw"),
            Ok(())
        );
        assert!(check_default_user(Some("pw"), Some(b"bob"), b"pw").is_err());
        assert!(check_default_user(Some("pw"), None, b"px").is_err());
        assert!(check_default_user(None, None, b"x").is_err());
        assert_eq!(check_default_user(None, Some(b"default"), b"x"), Ok(()));
    }
}
