//! Cleaning of user text (chat lines, display names): control characters stripped, whitespace
//! runs folded, length bounded. The page renders the result as text, never as HTML.

/// Chat text: control and format characters (including bidi overrides and zero-width ones)
/// removed, whitespace runs folded to one space, trimmed. `None` if nothing is left or it is
/// longer than `max_chars`.
pub fn clean_chat(raw: &str, max_chars: usize) -> Option<String> {
    let cleaned = fold(raw);
    let n = cleaned.chars().count();
    (n > 0 && n <= max_chars).then_some(cleaned)
}

/// Longest display name, in characters.
pub const NAME_MAX_CHARS: usize = 24;

/// A display name: cleaned like chat, cut to [`NAME_MAX_CHARS`] characters.
pub fn clean_name(raw: &str) -> Option<String> {
    let cleaned: String = fold(raw).chars().take(NAME_MAX_CHARS).collect();
    let cleaned = cleaned.trim_end().to_string();
    (!cleaned.is_empty()).then_some(cleaned)
}

fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}'   // zero-width space/joiners, LRM, RLM
            | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // bidi isolates
            | '\u{FEFF}'              // byte order mark
            | '\u{FFF9}'..='\u{FFFB}' // interlinear annotations
        )
}

fn fold(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut space = false;
    for c in raw.chars() {
        if c.is_whitespace() {
            space = !out.is_empty();
        } else if !is_invisible(c) {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_invisible_characters_are_stripped() {
        assert_eq!(
            clean_chat("a\u{0}b\u{7}c\u{202E}d\u{200B}e\u{1b}[31m", 100).as_deref(),
            Some("abcde[31m")
        );
    }

    #[test]
    fn whitespace_is_folded_and_trimmed() {
        assert_eq!(
            clean_chat("  hello \n\n\t world  ", 100).as_deref(),
            Some("hello world")
        );
    }

    #[test]
    fn empty_and_overlong_lines_are_refused() {
        assert_eq!(clean_chat(" \u{0} \n", 100), None);
        assert_eq!(clean_chat(&"é".repeat(11), 10), None);
        assert_eq!(
            clean_chat(&"é".repeat(10), 10).map(|s| s.chars().count()),
            Some(10)
        );
    }

    #[test]
    fn markup_is_kept_as_text_for_the_page_to_render_as_text() {
        let s = "<img src=x onerror=alert(1)>";
        assert_eq!(clean_chat(s, 100).as_deref(), Some(s));
    }

    #[test]
    fn names_are_short_and_never_empty() {
        assert_eq!(clean_name(&"x".repeat(40)).map(|s| s.len()), Some(24));
        assert_eq!(clean_name("\u{202E}\n"), None);
        assert_eq!(clean_name("  Ann  Lee ").as_deref(), Some("Ann Lee"));
    }
}
