//! Remote patterns (`get 'logs/*.txt'`, `rm 'tmp/*.log'`), expanded by the client from a
//! listing of the directory, as `sftp` does: the server has no patterns in its protocol.
//!
//! Only the last component may hold a pattern: `*` (any run of characters), `?` (any one
//! character) and `[...]` (one character of a set, with ranges `a-z` and `!` or `^` first for
//! "not in"; a `]` first is part of the set). As in a shell, a name starting with `.` is matched
//! only by a pattern that starts with `.`. A `[` without its `]` is an ordinary character.

/// The characters that make a component a pattern.
const SPECIAL: [char; 3] = ['*', '?', '['];

/// A remote path split around its pattern: the directory it lists (`""` for the root) and the
/// pattern its names are matched against.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct RemotePattern<'a> {
    /// The directory, as typed (no trailing `/`).
    pub dir: &'a str,
    /// The last component.
    pub pattern: &'a str,
}

/// `text` as a pattern, when its last component has one; `Err` when a component before the
/// last has one (only the last is expanded).
pub(super) fn pattern_in(text: &str) -> Result<Option<RemotePattern<'_>>, String> {
    let (dir, last) = match text.rsplit_once('/') {
        Some((dir, last)) => (dir, last),
        None => ("", text),
    };
    if !last.contains(SPECIAL) {
        return Ok(None);
    }
    if dir.contains(SPECIAL) {
        return Err(format!(
            "`{text}`: only the last component of a remote path may be a pattern"
        ));
    }
    Ok(Some(RemotePattern { dir, pattern: last }))
}

/// Whether `name` matches `pattern` (see the module documentation).
pub(super) fn matches(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    // Iterative, with one backtrack point (the last `*`): linear in practice, and no input
    // makes it recurse.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some('?') => {
                p += 1;
                n += 1;
                continue;
            }
            Some('[') => {
                if let Some((matched, next)) = in_set(&pattern, p, name[n]) {
                    if matched {
                        p = next;
                        n += 1;
                        continue;
                    }
                } else if name[n] == '[' {
                    // No closing `]`: an ordinary character.
                    p += 1;
                    n += 1;
                    continue;
                }
            }
            Some(&c) if c == name[n] => {
                p += 1;
                n += 1;
                continue;
            }
            _ => {}
        }
        match star {
            // The last `*` takes one more character, and matching starts again after it.
            Some((star_p, star_n)) => {
                star = Some((star_p, star_n + 1));
                p = star_p + 1;
                n = star_n + 1;
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// The set that opens at `pattern[open]` (a `[`): whether `c` is in it, and where the pattern
/// goes on after it; `None` when it has no closing `]`.
fn in_set(pattern: &[char], open: usize, c: char) -> Option<(bool, usize)> {
    let mut i = open + 1;
    let negated = matches!(pattern.get(i), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    loop {
        let &here = pattern.get(i)?;
        if here == ']' && !first {
            return Some((found != negated, i + 1));
        }
        first = false;
        match (pattern.get(i + 1), pattern.get(i + 2)) {
            (Some('-'), Some(&high)) if high != ']' => {
                found |= here <= c && c <= high;
                i += 3;
            }
            _ => {
                found |= here == c;
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_a_shell_matches_names() {
        let table: [(&str, &str, bool); 26] = [
            ("*.txt", "a.txt", true),
            ("*.txt", "a.txt.gz", false),
            ("*.txt", ".hidden.txt", false),
            (".*", ".hidden.txt", true),
            ("*", "anything", true),
            ("*", "", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbYcZ", false),
            ("a*b", "a*b", true),
            ("?", "é", true),
            ("?", "ab", false),
            ("log?.txt", "log1.txt", true),
            ("[abc].txt", "b.txt", true),
            ("[abc].txt", "d.txt", false),
            ("[a-c]x", "bx", true),
            ("[!a-c]x", "bx", false),
            ("[^a-c]x", "dx", true),
            ("[]]", "]", true),
            ("[a-]", "-", true),
            ("[", "[", true),
            ("a[", "a[", true),
            ("[a", "a", false),
            ("名*", "名前.txt", true),
            ("*前*", "名前.txt", true),
            ("**", "x", true),
            ("*.log", "x.log", true),
        ];
        for (pattern, name, expected) in table {
            assert_eq!(matches(pattern, name), expected, "{pattern} {name}");
        }
    }

    #[test]
    fn only_the_last_component_is_a_pattern() {
        assert_eq!(pattern_in("logs/a.txt"), Ok(None));
        assert_eq!(
            pattern_in("logs/*.txt"),
            Ok(Some(RemotePattern {
                dir: "logs",
                pattern: "*.txt"
            }))
        );
        assert_eq!(
            pattern_in("*.log"),
            Ok(Some(RemotePattern {
                dir: "",
                pattern: "*.log"
            }))
        );
        assert!(pattern_in("logs*/a.txt").is_ok_and(|p| p.is_none()));
        assert!(pattern_in("logs*/*.txt").is_err());
    }
}
