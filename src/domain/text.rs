//! The rule for free text that people type (names, descriptions, requests): a length in
//! characters and no control characters except new line and tab.

/// Why a text is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextRuleError {
    #[error("{min} to {max} characters")]
    Length { min: usize, max: usize },
    #[error("control characters are not allowed")]
    ControlCharacters,
}

/// Checks that `value` has `min` to `max` characters and no control characters other than
/// new line and tab.
pub fn check_text(value: &str, min: usize, max: usize) -> Result<(), TextRuleError> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(TextRuleError::Length { min, max });
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(TextRuleError::ControlCharacters);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rules() {
        assert_eq!(check_text("Ann\tLee\n", 1, 64), Ok(()));
        assert_eq!(
            check_text("", 1, 64),
            Err(TextRuleError::Length { min: 1, max: 64 })
        );
        assert_eq!(check_text("名字", 1, 2), Ok(()), "characters, not bytes");
        assert_eq!(
            check_text("a\u{7}b", 1, 64),
            Err(TextRuleError::ControlCharacters)
        );
    }
}
