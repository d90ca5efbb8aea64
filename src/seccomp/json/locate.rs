//! Line and column of a JSON path in the text of a profile.
//!
//! The loader works on a parsed `serde_json::Value`, which keeps no positions, and names
//! mistakes by their JSON path. When loading fails, the path is looked up again in the
//! text (which parsed, so it is valid JSON) by a small scanner that follows it.

/// One step of a JSON path: a key of an object or an index into an array.
#[derive(Debug, PartialEq, Eq)]
enum Step<'p> {
    Key(&'p str),
    Index(usize),
}

/// The steps of a path as the loader writes them (`syscalls[3].args[0].op`). A key
/// holding `.` or `[` cannot be told apart; the lookup then stops at the value holding
/// it, which is still the right neighbourhood.
fn steps(path: &str) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let Some((digits, tail)) = after.split_once(']') else {
                break;
            };
            let Ok(i) = digits.parse() else { break };
            steps.push(Step::Index(i));
            rest = tail;
        } else {
            let rest_key = rest.strip_prefix('.').unwrap_or(rest);
            let end = rest_key.find(['.', '[']).unwrap_or(rest_key.len());
            let (key, tail) = rest_key.split_at(end);
            steps.push(Step::Key(key));
            rest = tail;
        }
    }
    steps
}

/// The line and column (both from 1, the column in characters) of what `path` names
/// in `text`: the key itself if `key` is set (for a key that should not be there),
/// else the value. For a path that does not exist in the text (a missing key), the
/// position of the innermost value on the path that does.
pub(super) fn position(text: &str, path: &str, key: bool) -> Option<(usize, usize)> {
    let steps = steps(path);
    let mut scanner = Scanner {
        text: text.as_bytes(),
        at: 0,
    };
    scanner.whitespace();
    let mut found = scanner.at;
    for (n, step) in steps.iter().enumerate() {
        let last = n + 1 == steps.len();
        let next = match *step {
            Step::Key(name) => scanner
                .member(name)
                .map(|(k, v)| if last && key { k } else { v }),
            Step::Index(i) => scanner.element(i),
        };
        match next {
            Some(offset) => {
                found = offset;
                scanner.at = offset;
            }
            None => break,
        }
    }
    line_column(text, found)
}

/// The line and column (from 1, in characters) of byte `offset` of `text`.
pub(super) fn line_column(text: &str, offset: usize) -> Option<(usize, usize)> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before.get(line_start..)?.chars().count() + 1;
    Some((line, column))
}

/// serde_json's column (counted in bytes) of line `line` as a column in characters.
pub(super) fn char_column(text: &str, line: usize, byte_column: usize) -> usize {
    let Some(line_text) = line.checked_sub(1).and_then(|l| text.split('\n').nth(l)) else {
        return byte_column;
    };
    let bytes = line_text.as_bytes();
    let within = byte_column.min(bytes.len());
    // Count the bytes that start a character.
    let chars = bytes
        .get(..within)
        .map_or(0, |b| b.iter().filter(|&&c| c & 0xC0 != 0x80).count());
    chars + (byte_column - within)
}

/// A cursor over valid JSON text.
struct Scanner<'t> {
    text: &'t [u8],
    at: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.whitespace();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// In the object at the cursor, the byte offsets of the key `name` and of its
    /// value; the last occurrence, as serde_json keeps the last of duplicate keys.
    fn member(&mut self, name: &str) -> Option<(usize, usize)> {
        self.eat(b'{')?;
        let mut found = None;
        self.whitespace();
        if self.peek()? == b'}' {
            return None;
        }
        loop {
            self.whitespace();
            let key_at = self.at;
            let key = self.string()?;
            self.eat(b':')?;
            self.whitespace();
            if key == name {
                found = Some((key_at, self.at));
            }
            self.skip_value()?;
            self.whitespace();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => return found,
                _ => return None,
            }
        }
    }

    /// In the array at the cursor, the byte offset of element `index`.
    fn element(&mut self, index: usize) -> Option<usize> {
        self.eat(b'[')?;
        self.whitespace();
        if self.peek()? == b']' {
            return None;
        }
        for _ in 0..index {
            self.skip_value()?;
            self.eat(b',')?;
        }
        self.whitespace();
        Some(self.at)
    }

    /// The string at the cursor, unescaped.
    fn string(&mut self) -> Option<String> {
        if self.peek()? != b'"' {
            return None;
        }
        self.at += 1;
        let mut out = String::new();
        loop {
            let start = self.at;
            while !matches!(self.peek()?, b'"' | b'\\') {
                self.at += 1;
            }
            out.push_str(std::str::from_utf8(self.text.get(start..self.at)?).ok()?);
            let byte = self.peek()?;
            self.at += 1;
            if byte == b'"' {
                return Some(out);
            }
            let escape = self.peek()?;
            self.at += 1;
            match escape {
                b'"' => out.push('"'),
                b'\\' => out.push('\\'),
                b'/' => out.push('/'),
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => {
                    let high = self.hex4()?;
                    let c = if (0xD800..0xDC00).contains(&high) {
                        // A surrogate pair, or a lone surrogate (replaced).
                        let low = (self.text.get(self.at..self.at + 2) == Some(b"\\u"))
                            .then(|| {
                                let save = self.at;
                                self.at += 2;
                                let low = self.hex4().filter(|l| (0xDC00..0xE000).contains(l));
                                if low.is_none() {
                                    self.at = save;
                                }
                                low
                            })
                            .flatten();
                        low.and_then(|low| {
                            char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
                        })
                    } else {
                        char::from_u32(high)
                    };
                    out.push(c.unwrap_or(char::REPLACEMENT_CHARACTER));
                }
                _ => return None,
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = std::str::from_utf8(self.text.get(self.at..self.at + 4)?).ok()?;
        let value = u32::from_str_radix(digits, 16).ok()?;
        self.at += 4;
        Some(value)
    }

    /// Moves past the value at the cursor (without recursion: nesting is counted).
    fn skip_value(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            self.whitespace();
            match self.peek()? {
                b'"' => {
                    self.string()?;
                }
                b'{' | b'[' => {
                    self.at += 1;
                    depth += 1;
                    continue;
                }
                b'}' | b']' => {
                    self.at += 1;
                    depth = depth.checked_sub(1)?;
                }
                b',' | b':' if depth > 0 => {
                    self.at += 1;
                    continue;
                }
                _ => {
                    // A number or a literal: up to the next delimiter.
                    let start = self.at;
                    while !matches!(
                        self.peek(),
                        None | Some(b',' | b'}' | b']' | b':' | b' ' | b'\t' | b'\n' | b'\r')
                    ) {
                        self.at += 1;
                    }
                    if self.at == start {
                        return None;
                    }
                }
            }
            if depth == 0 {
                return Some(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_steps() {
        assert_eq!(
            steps("syscalls[3].args[0].op"),
            vec![
                Step::Key("syscalls"),
                Step::Index(3),
                Step::Key("args"),
                Step::Index(0),
                Step::Key("op"),
            ]
        );
        assert_eq!(steps(""), vec![]);
        assert_eq!(
            steps("archMap[0]"),
            vec![Step::Key("archMap"), Step::Index(0)]
        );
    }

    #[test]
    fn values_keys_and_missing_keys_are_found() {
        let text = "{\n  \"a\": [1, {\"b\": \"x\"}, [2, 3]],\n  \"c\\u0064\": {\"e\": null}\n}";
        assert_eq!(position(text, "", false), Some((1, 1)));
        assert_eq!(position(text, "a", false), Some((2, 8)));
        assert_eq!(position(text, "a", true), Some((2, 3)));
        assert_eq!(position(text, "a[1].b", false), Some((2, 18)));
        assert_eq!(position(text, "a[2][1]", false), Some((2, 28)));
        // An escaped key is matched unescaped.
        assert_eq!(position(text, "cd.e", false), Some((3, 20)));
        // Missing: the innermost value that exists.
        assert_eq!(position(text, "a[1].z", false), Some((2, 12)));
        assert_eq!(position(text, "a[7]", false), Some((2, 8)));
    }

    #[test]
    fn duplicate_keys_find_the_last_one() {
        let text = r#"{"k": 1, "k": 2}"#;
        assert_eq!(position(text, "k", false), Some((1, 15)));
    }

    #[test]
    fn columns_count_characters() {
        let text = "{\"é\": \"ü\", \"k\": 1}";
        assert_eq!(position(text, "k", true), Some((1, 12)));
        // serde_json counts bytes: the key's quote is byte 14.
        assert_eq!(char_column(text, 1, 14), 12);
        assert_eq!(char_column("", 1, 0), 0);
        assert_eq!(char_column("ab", 1, 5), 5);
    }
}
