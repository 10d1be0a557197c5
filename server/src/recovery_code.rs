//! A profile's recovery code: the one secret that brings a profile back on another device.
//! 100 random bits written as 20 Crockford base32 characters in groups of four; the store only
//! ever sees its SHA-256, so a leaked database restores nobody.

use sha2::{Digest, Sha256};
use std::fmt;

/// Crockford's base32: digits and capitals without I, L, O and U, so that a code read aloud or
/// copied by hand survives.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// 20 characters of 5 bits each: 100 random bits.
const LEN: usize = 20;
const GROUP: usize = 4;

/// A recovery code, normalised (20 characters, no separators). Its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

impl RecoveryCode {
    pub fn generate() -> RecoveryCode {
        let mut code = String::with_capacity(LEN);
        while code.len() < LEN {
            let id = uuid::Uuid::new_v4();
            // Byte 6 carries the uuid's version in its high bits and byte 8 its variant in its
            // top two: the low five bits of every byte but byte 6 are uniform.
            for (i, b) in id.as_bytes().iter().enumerate() {
                if i != 6 && code.len() < LEN {
                    code.push(char::from(ALPHABET[usize::from(b & 31)]));
                }
            }
        }
        RecoveryCode(code)
    }

    /// Reads a code as a person may type it back: any case, with spaces and dashes anywhere,
    /// and with Crockford's look-alikes (`O` for 0, `I` and `L` for 1). `None` when what is
    /// left is not 20 characters of the alphabet.
    pub fn parse(text: &str) -> Option<RecoveryCode> {
        // Longer input is not a code however it is spaced; stop before reading megabytes.
        if text.len() > 4 * LEN {
            return None;
        }
        let mut code = String::with_capacity(LEN);
        for c in text.chars() {
            let c = match c.to_ascii_uppercase() {
                ' ' | '-' => continue,
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            };
            if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
                return None;
            }
            code.push(c);
        }
        (code.len() == LEN).then_some(RecoveryCode(code))
    }

    /// As shown to the player: groups of four joined by dashes.
    pub fn display(&self) -> String {
        self.0
            .as_bytes()
            .chunks(GROUP)
            .map(|g| std::str::from_utf8(g).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("-")
    }

    /// What the store keeps: SHA-256 of the normalised code, in hex.
    pub fn hash(&self) -> String {
        hex(&Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(<redacted>)")
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_code_is_20_crockford_characters_in_groups_of_four() {
        let code = RecoveryCode::generate();
        let shown = code.display();
        assert_eq!(shown.len(), 24, "{shown}");
        assert_eq!(shown.split('-').count(), 5);
        assert!(shown.split('-').all(|g| g.len() == 4));
        assert_eq!(RecoveryCode::parse(&shown), Some(code.clone()));
        assert_ne!(RecoveryCode::generate(), code);
        assert!(!format!("{code:?}").contains(&code.0));
    }

    #[test]
    fn generated_codes_use_the_whole_alphabet_in_every_position() {
        // 5 bits per character, uniform: over many codes every character shows up at every
        // position (a biased byte, such as the uuid's version, would pin some of them).
        let mut seen = vec![[false; 32]; LEN];
        for _ in 0..2_000 {
            for (i, c) in RecoveryCode::generate().0.bytes().enumerate() {
                let k = ALPHABET.iter().position(|a| *a == c).unwrap();
                seen[i][k] = true;
            }
        }
        assert!(seen.iter().all(|pos| pos.iter().all(|s| *s)));
    }

    #[test]
    fn a_code_is_read_back_whatever_its_case_spacing_and_look_alikes() {
        let code = RecoveryCode::parse("7K3M-Q9TX-2HDA-W4RB-8NCE").unwrap();
        for typed in [
            "7k3m q9tx 2hda w4rb 8nce",
            "7K3MQ9TX2HDAW4RB8NCE",
            " 7k3m-q9tx - 2hda-w4rb-8nce ",
        ] {
            assert_eq!(RecoveryCode::parse(typed).as_ref(), Some(&code), "{typed}");
            assert_eq!(RecoveryCode::parse(typed).unwrap().hash(), code.hash());
        }
        let o = RecoveryCode::parse("O0IL-1111-2222-3333-4444").unwrap();
        assert_eq!(o.display(), "0011-1111-2222-3333-4444");
    }

    #[test]
    fn anything_else_is_not_a_code() {
        for bad in [
            "",
            "7K3M-Q9TX-2HDA-W4RB",
            "7K3M-Q9TX-2HDA-W4RB-8NCEX",
            "7K3M-Q9TX-2HDA-W4RB-8NCU",
            "7K3M_Q9TX_2HDA_W4RB_8NCE",
            "ÄK3M-Q9TX-2HDA-W4RB-8NCE",
        ] {
            assert_eq!(RecoveryCode::parse(bad), None, "{bad}");
        }
        assert_eq!(RecoveryCode::parse(&"-".repeat(1_000_000)), None);
    }

    #[test]
    fn the_hash_is_sha256_of_the_normalised_code() {
        let code = RecoveryCode::parse("0000-0000-0000-0000-0000").unwrap();
        assert_eq!(code.hash(), hex(&Sha256::digest(b"00000000000000000000")));
        assert_eq!(code.hash().len(), 64);
    }
}
