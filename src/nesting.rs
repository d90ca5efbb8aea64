//! How deep a policy text nests, read before a recursive parser sees it.
//!
//! The toml and serde_json parsers recurse once per level of arrays and tables and stop
//! at a limit of their own (128 for serde_json), which in a debug build is deeper than
//! a small thread's stack (128 KiB) can hold. The policy and profile loaders refuse
//! deeper nesting than their formats need, with the place, before parsing.

/// The byte offset of the first `[` or `{` of `src` that opens level `max + 1`, outside
/// strings (`"..."` and `'...'`, one-line or tripled, `\` escaping in the double-quoted
/// ones) and `#` comments; `None` if nothing nests that deep.
///
/// This reads TOML, and JSON, whose strings are TOML's double-quoted ones and which has
/// no `'` or `#` outside them. A text that is neither is read as far as it goes: its
/// parser says what is wrong with it, before it reaches what this read past.
pub(crate) fn too_deep(src: &str, max: usize) -> Option<usize> {
    let bytes = src.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                // A comment, to the end of the line.
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            quote @ (b'"' | b'\'') => {
                let multiline =
                    bytes[i..].starts_with(if quote == b'"' { b"\"\"\"" } else { b"'''" });
                let (open, escapes) = (if multiline { 3 } else { 1 }, quote == b'"');
                i += open;
                // To the closing quote(s); a basic string's `\` escapes the next byte,
                // and a one-line string ends at the end of its line at the latest.
                while i < bytes.len() {
                    let b = bytes[i];
                    if escapes && b == b'\\' {
                        i += 2;
                        continue;
                    }
                    if !multiline && b == b'\n' {
                        break;
                    }
                    if b == quote && (!multiline || bytes[i..].starts_with(&[quote; 3])) {
                        i += open;
                        break;
                    }
                    i += 1;
                }
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The line and column (from 1, the column counted in characters) of byte `offset` of
/// `src`.
pub(crate) fn line_column(src: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(src.len());
    while !src.is_char_boundary(end) {
        end -= 1;
    }
    let before = &src[..end];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_brackets_outside_strings_and_comments() {
        assert_eq!(too_deep("[[[]]]", 3), None);
        assert_eq!(too_deep("[[[[]]]]", 3), Some(3));
        assert_eq!(too_deep("{\"a\": [{\"b\": []}]}", 3), Some(13));
        assert_eq!(
            too_deep(r#"["[[[[", '[[[[', """[[[[\"""", '''[[[[''']"#, 1),
            None
        );
        assert_eq!(too_deep("# [[[[\n[]", 1), None);
        assert_eq!(too_deep("\"\\\"[[[[\"", 1), None);
        // A one-line string ends at its line, however it is broken.
        assert_eq!(too_deep("\"[[[[\n[[", 1), Some(7));
    }

    #[test]
    fn positions_count_characters() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("é[", 2), (1, 2));
    }
}
