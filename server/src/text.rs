//! Cleaning of user text (chat lines, display names): control, format and other invisible
//! characters stripped, whitespace runs folded, length bounded, and text with nothing visible
//! refused. The page renders the result as text, never as HTML.
//!
//! Invisible characters are the ones that make a line *look* empty or different from what it
//! is: Unicode's default-ignorable code points (soft hyphen, Hangul fillers, bidi marks, tag
//! characters, variation selectors…). A few of them are kept where they belong to a visible
//! sequence: a zero-width joiner between two emoji (a family emoji stays one picture), a
//! variation selector right after the character it selects, tag characters of a flag such as
//! England's. The ranges are written out here rather than taken from a Unicode crate: the list
//! is short, stable, and one file to review.
//!
//! Whether text shows anything is decided by general category instead (a long tail of
//! scripts): it needs a base character, one that is not a mark, a format character, a
//! separator, a control or unassigned. Combining marks beyond [`MAX_MARKS`] on one base are
//! dropped, so a line cannot grow a tower of accents over its neighbours.

use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

/// Combining marks kept on one base character: scripts that stack marks (Vietnamese,
/// Devanagari, Tibetan, Hebrew points) use two or three; more is drawing over other lines.
pub const MAX_MARKS: usize = 4;

/// Chat text: invisible characters removed (see the module doc), whitespace runs folded to one
/// space, trimmed. `None` if nothing visible is left or it is longer than `max_chars`.
pub fn clean_chat(raw: &str, max_chars: usize) -> Option<String> {
    let cleaned = fold(raw);
    let n = cleaned.chars().count();
    (has_visible(&cleaned) && n <= max_chars).then_some(cleaned)
}

/// Longest display name, in characters.
pub const NAME_MAX_CHARS: usize = 24;

/// A display name: cleaned like chat, cut to [`NAME_MAX_CHARS`] characters without splitting an
/// emoji sequence when it can help it. `None` if nothing visible is left.
pub fn clean_name(raw: &str) -> Option<String> {
    let chars: Vec<char> = fold(raw).chars().collect();
    let mut cut = chars.len().min(NAME_MAX_CHARS);
    if cut < chars.len() {
        // Back off to the start of a sequence the cut would split; a single sequence longer
        // than a name is cut where it must be.
        let mut boundary = cut;
        while boundary > 0 && continues_sequence(chars[boundary - 1], chars[boundary]) {
            boundary -= 1;
        }
        if boundary > 0 {
            cut = boundary;
        }
    }
    let mut name: String = chars[..cut].iter().collect();
    // A joiner left at the end would join to whatever the page prints next.
    while name.ends_with(['\u{200D}', ' ']) {
        name.pop();
    }
    has_visible(&name).then_some(name)
}

/// Whether `next` belongs to the same visible sequence as `prev` (cutting between them would
/// change what is shown).
fn continues_sequence(prev: char, next: char) -> bool {
    prev == ZWJ
        || next == ZWJ
        || is_variation_selector(next)
        || is_skin_tone(next)
        || is_combining_mark(next)
        || is_tag(next)
}

const ZWJ: char = '\u{200D}';
const BLACK_FLAG: char = '\u{1F3F4}';
const CANCEL_TAG: char = '\u{E007F}';

/// Folds whitespace and drops invisible characters, keeping joiners, variation selectors and
/// tags only where they are part of something visible.
fn fold(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut space = false;
    // What the last kept character can carry: a variation selector needs a base, a joiner an
    // emoji on its left, a tag character a flag (or the tags after it).
    let mut base = false;
    let mut emoji = false;
    let mut in_tags = false;
    // Combining marks kept since the last character that is not one.
    let mut marks = 0;
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if is_blank(c) {
            space = !out.is_empty();
            (base, emoji, in_tags) = (false, false, false);
            continue;
        }
        let keep = if c == ZWJ {
            emoji && chars.peek().is_some_and(|&n| is_pictographic(n))
        } else if is_variation_selector(c) {
            base
        } else if is_tag(c) {
            in_tags
        } else {
            !is_invisible(c)
        };
        if !keep {
            continue;
        }
        if is_combining_mark(c) {
            if marks >= MAX_MARKS {
                continue;
            }
            marks += 1;
        } else if !is_variation_selector(c) {
            marks = 0;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
        if c == ZWJ {
            (base, emoji, in_tags) = (false, false, false);
        } else if is_variation_selector(c) {
            // One selector per base; an emoji keeps its emoji-ness (❤️‍🔥).
            base = false;
        } else if is_tag(c) {
            in_tags = c != CANCEL_TAG;
        } else {
            base = !is_combining_mark(c);
            emoji = is_pictographic(c) || (emoji && (is_skin_tone(c) || is_combining_mark(c)));
            in_tags = c == BLACK_FLAG;
        }
    }
    out
}

/// Whether the text shows anything: one base character, that is neither a space, a mark, a
/// format character (joiners, tags), a control, nor unassigned; variation selectors are
/// marks.
fn has_visible(s: &str) -> bool {
    s.chars().any(is_base)
}

fn is_base(c: char) -> bool {
    use unicode_properties::GeneralCategory as G;
    if c.is_whitespace() || is_blank(c) || is_invisible(c) {
        return false;
    }
    match c.general_category_group() {
        GeneralCategoryGroup::Mark | GeneralCategoryGroup::Separator => false,
        GeneralCategoryGroup::Other => c.general_category() == G::PrivateUse,
        _ => true,
    }
}

/// Characters treated as a space: Unicode whitespace and the Braille blank, which looks like
/// one.
fn is_blank(c: char) -> bool {
    c.is_whitespace() || c == '\u{2800}'
}

/// Dropped everywhere (joiners, selectors and tags are decided by context in [`fold`]).
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}'                  // soft hyphen
            | '\u{034F}'                // combining grapheme joiner
            | '\u{061C}'                // Arabic letter mark
            | '\u{115F}'..='\u{1160}'   // Hangul choseong/jungseong fillers
            | '\u{17B4}'..='\u{17B5}'   // Khmer inherent vowels
            | '\u{180E}'                // Mongolian vowel separator
            | '\u{200B}'..='\u{200F}'   // zero-width space, non-joiner, joiner, LRM, RLM
            | '\u{202A}'..='\u{202E}'   // bidi embeddings and overrides
            | '\u{2060}'..='\u{206F}'   // word joiner, invisible operators, bidi isolates, …
            | '\u{3164}'                // Hangul filler
            | '\u{FEFF}'                // byte order mark
            | '\u{FFA0}'                // halfwidth Hangul filler
            | '\u{FFF0}'..='\u{FFFB}'   // unassigned specials, interlinear annotations
            | '\u{1BCA0}'..='\u{1BCA3}' // shorthand format controls
            | '\u{1D173}'..='\u{1D17A}' // musical symbol format controls
            | '\u{E0000}'..='\u{E0FFF}' // tags, variation selectors supplement, reserved
        )
}

fn is_variation_selector(c: char) -> bool {
    matches!(c, '\u{180B}'..='\u{180D}' | '\u{180F}' | '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}')
}

/// Tag characters, as used by subdivision flags (🏴 followed by tags and a cancel tag).
fn is_tag(c: char) -> bool {
    matches!(c, '\u{E0020}'..='\u{E007F}')
}

fn is_skin_tone(c: char) -> bool {
    matches!(c, '\u{1F3FB}'..='\u{1F3FF}')
}

/// A combining mark of any script (general category M: nonspacing, spacing, enclosing),
/// variation selectors aside: they select, they do not stack.
fn is_combining_mark(c: char) -> bool {
    c.general_category_group() == GeneralCategoryGroup::Mark && !is_variation_selector(c)
}

/// Characters that start or continue emoji joiner sequences (Extended_Pictographic, by block).
fn is_pictographic(c: char) -> bool {
    matches!(c,
        '\u{00A9}' | '\u{00AE}' | '\u{203C}' | '\u{2049}' | '\u{2122}' | '\u{2139}'
        | '\u{2194}'..='\u{21AA}'
        | '\u{231A}'..='\u{23FF}'
        | '\u{24C2}'
        | '\u{25AA}'..='\u{25FE}'
        | '\u{2600}'..='\u{27BF}'
        | '\u{2934}'..='\u{2935}'
        | '\u{2B05}'..='\u{2B55}'
        | '\u{3030}' | '\u{303D}' | '\u{3297}' | '\u{3299}'
        | '\u{1F000}'..='\u{1FAFF}'
        | '\u{1FC00}'..='\u{1FFFD}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn control_and_invisible_characters_are_stripped() {
        assert_eq!(
            clean_chat("a\u{0}b\u{7}c\u{202E}d\u{200B}e\u{1b}[31m", 100).as_deref(),
            Some("abcde[31m")
        );
        assert_eq!(
            clean_chat("so\u{AD}ft \u{61C}x\u{3164}y", 100).as_deref(),
            Some("soft xy")
        );
    }

    #[test]
    fn whitespace_is_folded_and_trimmed() {
        assert_eq!(
            clean_chat("  hello \n\n\t world  ", 100).as_deref(),
            Some("hello world")
        );
        assert_eq!(
            clean_chat("a\u{2800}\u{3000}b", 100).as_deref(),
            Some("a b")
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

    /// Each of these renders as nothing (or as blank space) in a browser.
    const BLANK_LOOKING: &[&str] = &[
        "\u{3164}",
        "\u{3164}\u{3164} \u{3164}",
        "\u{AD}",
        "\u{61C}",
        "\u{115F}\u{1160}",
        "\u{FFA0}",
        "\u{FE0F}",
        " \u{FE0F} \u{FE0E}",
        "\u{200D}",
        "\u{200D}\u{200D}",
        "\u{E0067}\u{E0062}\u{E007F}",
        "\u{E0001}\u{E0065}\u{E006E}",
        "\u{034F}",
        "\u{2800}\u{2800}",
        "\u{0301}\u{0301}",
        "\u{180E}",
        "\u{1D173}",
        "\u{E0100}",
        // Marks of other scripts on their own: Hebrew point, Arabic fathatan, Thai mai han-akat,
        // a Khitan small script mark, and a spacing mark (Devanagari sign visarga).
        "\u{05B0}",
        "\u{064B}\u{064B}",
        "\u{0E31}",
        "\u{16FE4}",
        "\u{0903}",
        // Unassigned and format characters.
        "\u{0378}",
        "\u{110BD}",
    ];

    #[test]
    fn text_with_nothing_visible_is_refused() {
        for s in BLANK_LOOKING {
            assert_eq!(
                clean_chat(s, 100),
                None,
                "{:?}",
                s.escape_unicode().to_string()
            );
            assert_eq!(clean_name(s), None, "{:?}", s.escape_unicode().to_string());
        }
    }

    #[test]
    fn emoji_sequences_stay_whole() {
        for e in [
            "👨\u{200D}👩\u{200D}👧\u{200D}👦", // family
            "❤\u{FE0F}\u{200D}🔥",              // heart on fire
            "🏳\u{FE0F}\u{200D}🌈",              // rainbow flag
            "👩🏽\u{200D}💻",                     // technologist, skin tone
            "🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}", // England
            "1\u{FE0F}\u{20E3}",                // keycap
            "☺\u{FE0E}",                        // text presentation
        ] {
            let line = format!("gg {e}!");
            assert_eq!(clean_chat(&line, 100).as_deref(), Some(line.as_str()));
            assert_eq!(clean_name(e).as_deref(), Some(e));
        }
    }

    #[test]
    fn joiners_and_selectors_out_of_place_are_dropped() {
        assert_eq!(clean_chat("a\u{200D}b", 100).as_deref(), Some("ab"));
        assert_eq!(
            clean_chat("👨\u{200D}\u{200D}👩", 100).as_deref(),
            Some("👨\u{200D}👩"),
            "a doubled joiner counts once"
        );
        assert_eq!(clean_chat("👨\u{200D}", 100).as_deref(), Some("👨"));
        assert_eq!(clean_chat("\u{FE0F}x", 100).as_deref(), Some("x"));
        assert_eq!(
            clean_chat("x\u{FE0F}\u{FE0F}", 100).as_deref(),
            Some("x\u{FE0F}")
        );
        assert_eq!(clean_chat("a\u{E0067}b", 100).as_deref(), Some("ab"));
    }

    #[test]
    fn a_tower_of_marks_is_cut_to_a_few_per_base() {
        let tower = format!("a{}", "\u{0301}".repeat(279));
        let cleaned = clean_chat(&tower, 280).unwrap();
        assert_eq!(cleaned, format!("a{}", "\u{0301}".repeat(MAX_MARKS)));
        // Each base gets its own allowance; real stacked marks pass untouched.
        let viet = "Tiếng Việt ở đây";
        assert_eq!(clean_chat(viet, 100).as_deref(), Some(viet));
        let hindi = "नमस्ते दुनिया";
        assert_eq!(clean_chat(hindi, 100).as_deref(), Some(hindi));
        let two = format!("a{m}{m}{m}{m}{m}b{m}{m}", m = "\u{0308}");
        assert_eq!(
            clean_chat(&two, 100),
            Some(format!(
                "a{}b{}",
                "\u{0308}".repeat(4),
                "\u{0308}".repeat(2)
            ))
        );
    }

    #[test]
    fn names_in_other_scripts_with_marks_are_visible() {
        for name in ["שָׁלוֹם", "كِتَاب", "กั", "ñ", "e\u{0301}"] {
            assert_eq!(clean_name(name).as_deref(), Some(name), "{name}");
        }
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

    #[test]
    fn a_name_is_not_cut_inside_an_emoji_sequence() {
        let family = "👨\u{200D}👩\u{200D}👧";
        let name = format!("{}{family}", "x".repeat(22));
        assert_eq!(clean_name(&name).as_deref(), Some("x".repeat(22).as_str()));
    }

    /// Characters that make cleaning interesting: every kind it treats specially.
    fn tricky_char() -> impl Strategy<Value = char> {
        prop_oneof![
            Just('a'),
            Just('é'),
            Just(' '),
            Just('\n'),
            Just('\u{0}'),
            Just('\u{7F}'),
            Just('\u{AD}'),
            Just('\u{61C}'),
            Just('\u{3164}'),
            Just('\u{200B}'),
            Just('\u{200D}'),
            Just('\u{202E}'),
            Just('\u{2066}'),
            Just('\u{FE0F}'),
            Just('\u{FE0E}'),
            Just('\u{0301}'),
            Just('\u{05B0}'),
            Just('\u{0903}'),
            Just('\u{16FE4}'),
            Just('\u{0378}'),
            Just('\u{20E3}'),
            Just('\u{2800}'),
            Just('\u{3000}'),
            Just('\u{E0067}'),
            Just('\u{E007F}'),
            Just('\u{E0001}'),
            Just('👨'),
            Just('🏴'),
            Just('❤'),
            Just('\u{1F3FD}'),
            any::<char>(),
        ]
    }

    fn tricky_string() -> impl Strategy<Value = String> {
        proptest::collection::vec(tricky_char(), 0..40).prop_map(|v| v.into_iter().collect())
    }

    const SPACES: &[&str] = &[" ", "\t", "\u{3000}", ""];
    const PEOPLE: &[char] = &['👨', '👩', '👧', '👦'];

    proptest! {
        #[test]
        fn cleaned_text_is_stable_bounded_and_visible(raw in tricky_string(), max in 1usize..50) {
            if let Some(c) = clean_chat(&raw, max) {
                prop_assert!(c.chars().count() <= max);
                prop_assert!(has_visible(&c));
                prop_assert_eq!(c.trim(), c.as_str());
                prop_assert!(!c.contains("  "));
                prop_assert!(!c.chars().any(|ch| ch.is_control() || is_invisible(ch) && !is_tag(ch) && ch != ZWJ && !is_variation_selector(ch)));
                // Cleaning clean text changes nothing.
                prop_assert_eq!(clean_chat(&c, max), Some(c.clone()));
            }
            if let Some(c) = clean_chat(&raw, 1000) {
                // No base carries more than MAX_MARKS marks.
                let mut run = 0;
                for ch in c.chars() {
                    run = if is_combining_mark(ch) { run + 1 } else if is_variation_selector(ch) { run } else { 0 };
                    prop_assert!(run <= MAX_MARKS, "{:?}", c.escape_unicode().to_string());
                }
                // Visible means a base character that is no mark, format, space or control.
                let base = |ch: char| {
                    use unicode_properties::GeneralCategoryGroup as G;
                    !matches!(ch.general_category_group(), G::Mark | G::Separator) && !ch.is_whitespace()
                        && (ch.general_category_group() != G::Other || ch.general_category() == unicode_properties::GeneralCategory::PrivateUse)
                };
                prop_assert!(c.chars().any(base));
            }
            if let Some(n) = clean_name(&raw) {
                prop_assert!(n.chars().count() <= NAME_MAX_CHARS);
                prop_assert!(has_visible(&n));
                prop_assert!(!n.ends_with(ZWJ));
                prop_assert_eq!(clean_name(&n), Some(n.clone()));
            }
        }

        #[test]
        fn joiners_survive_only_between_emoji(raw in tricky_string()) {
            if let Some(c) = clean_chat(&raw, 1000) {
                let chars: Vec<char> = c.chars().collect();
                for (i, ch) in chars.iter().enumerate() {
                    if *ch == ZWJ {
                        prop_assert!(i > 0 && i + 1 < chars.len());
                        prop_assert!(is_pictographic(chars[i + 1]));
                    }
                    if is_variation_selector(*ch) {
                        prop_assert!(i > 0 && !chars[i - 1].is_whitespace() && !is_variation_selector(chars[i - 1]));
                    }
                }
            }
        }

        #[test]
        fn blank_looking_text_is_refused_however_it_is_mixed(
            parts in proptest::collection::vec(proptest::sample::select(BLANK_LOOKING), 1..8),
            spaces in proptest::collection::vec(proptest::sample::select(SPACES), 8),
        ) {
            let raw: String = parts.iter().zip(spaces.iter().cycle()).map(|(p, s)| format!("{p}{s}")).collect();
            prop_assert_eq!(clean_chat(&raw, 1000), None);
            prop_assert_eq!(clean_name(&raw), None);
        }

        #[test]
        fn emoji_sequences_in_any_text_come_out_whole(
            before in "[a-z ]{0,10}",
            people in proptest::collection::vec(proptest::sample::select(PEOPLE), 2..5),
            after in "[a-z ]{0,10}",
        ) {
            let family: String = people.iter().map(char::to_string).collect::<Vec<_>>().join("\u{200D}");
            let raw = format!("{before} {family} {after}");
            let cleaned = clean_chat(&raw, 1000).unwrap();
            prop_assert!(cleaned.contains(&family));
        }
    }
}
